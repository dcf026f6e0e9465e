//! LogPAI-style header formats: `<Date> <Time> <Level> <Component>: <Content>`.
//!
//! Text between `<Name>` placeholders is a regular expression (LogPAI's convention, so
//! `\[<Pid>\]` and optional groups work); runs of spaces match any whitespace. Each
//! placeholder but the last captures lazily; `<Content>` takes the rest of the line.

use regex::Regex;

use super::ParseError;
use crate::event::Level;

/// A compiled header format.
#[derive(Debug, Clone)]
pub struct LogFormat {
    regex: Regex,
    content: usize,
    level: Option<usize>,
}

impl LogFormat {
    /// Compile a format string. It must contain `<Content>`.
    pub fn new(format: &str) -> Result<LogFormat, ParseError> {
        let mut pattern = String::from("^");
        let mut names: Vec<String> = Vec::new();
        let mut rest = format;
        while let Some(open) = rest.find('<') {
            let Some(close_rel) = rest[open..].find('>') else {
                break;
            };
            let name = &rest[open + 1..open + close_rel];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                // Not a placeholder: keep the text literally and move on.
                push_literal(&mut pattern, &rest[..open + 1]);
                rest = &rest[open + 1..];
                continue;
            }
            push_literal(&mut pattern, &rest[..open]);
            if names.iter().any(|n| n == name) {
                return Err(ParseError::LogFormat {
                    format: format.to_string(),
                    reason: format!("placeholder <{name}> appears twice"),
                });
            }
            let group = if name == "Content" { ".*" } else { ".*?" };
            pattern.push_str(&format!("(?P<{name}>{group})"));
            names.push(name.to_string());
            rest = &rest[open + close_rel + 1..];
        }
        push_literal(&mut pattern, rest);
        pattern.push('$');
        if !names.iter().any(|n| n == "Content") {
            return Err(ParseError::LogFormat {
                format: format.to_string(),
                reason: "it has no <Content> placeholder".to_string(),
            });
        }
        let regex = Regex::new(&pattern).map_err(|e| ParseError::LogFormat {
            format: format.to_string(),
            reason: e.to_string(),
        })?;
        let index = |want: &str| regex.capture_names().position(|n| n == Some(want));
        let content = index("Content").ok_or_else(|| ParseError::LogFormat {
            format: format.to_string(),
            reason: "it has no <Content> placeholder".to_string(),
        })?;
        let level = index("Level");
        Ok(LogFormat {
            regex,
            content,
            level,
        })
    }

    /// Split a line into its level and content. `None` when the header does not match; the
    /// caller then treats the whole line as content.
    pub fn split<'a>(&self, line: &'a str) -> Option<(Option<Level>, &'a str)> {
        let caps = self.regex.captures(line)?;
        let content = caps.get(self.content)?.as_str();
        let level = self
            .level
            .and_then(|i| caps.get(i))
            .and_then(|m| Level::from_word(m.as_str().trim().as_bytes(), true));
        Some((level, content))
    }
}

/// Literal text between placeholders is regex (LogPAI convention); only spaces change.
fn push_literal(pattern: &mut String, text: &str) {
    let mut in_space = false;
    for c in text.chars() {
        if c == ' ' {
            if !in_space {
                pattern.push_str(r"\s+");
            }
            in_space = true;
        } else {
            pattern.push(c);
            in_space = false;
        }
    }
}
