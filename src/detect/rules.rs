//! The rule file schema and loading. Structural errors (YAML syntax, unknown keys, wrong
//! types) come from serde with their line and column; semantic errors (bad regex, empty
//! match, duplicate id) are located afterwards by finding the rule's field in the text.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event::{Level, Severity};

/// One rule file: a list of rules.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

/// One detection rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique id across all loaded files, e.g. `oom-killed`.
    pub id: String,
    /// What the rule catches, for humans and tickets.
    pub description: String,
    /// How bad a hit is.
    pub severity: Severity,
    /// What must be present.
    #[serde(rename = "match")]
    pub matcher: Matcher,
    /// Fire only for events at these levels. Events without a parsed level pass unless
    /// `level_required` is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub level: Vec<Level>,
    /// With `level`: events without a parsed level do not pass.
    #[serde(default)]
    pub level_required: bool,
    /// Fire only for matching origins.
    #[serde(default, skip_serializing_if = "Selector::is_empty")]
    pub select: Selector,
    /// Suppress the hit when any of these is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Matcher>,
    /// Labels carried onto incidents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A hit of this rule suppresses other incidents on the same container for a while
    /// (used by the window stage).
    #[serde(default)]
    pub inhibits: bool,
    /// How this rule's hits group into incidents; the window defaults apply without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentSettings>,
    /// Lines that must and must not match; `medic check-rules` and the tests run them.
    #[serde(default)]
    pub examples: Examples,
}

/// Per-rule incident settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentSettings {
    /// What one incident is: any of `service`, `fingerprint`, `rule`. The default is
    /// `[service, fingerprint]`; `[service, rule]` makes every hit of the rule on a service
    /// one incident whatever the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<GroupBy>,
    /// Open after this many hits within this window, instead of the severity's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<RuleThreshold>,
}

/// A part of the incident key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// The service, container or file.
    Service,
    /// The template fingerprint.
    Fingerprint,
    /// The rule id.
    Rule,
}

/// `count` hits within `within`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleThreshold {
    /// Hits needed (at least 1).
    pub count: u32,
    /// Window, such as `1m`.
    #[serde(with = "crate::event::duration")]
    pub within: std::time::Duration,
}

/// Literal and regex conditions. A matcher holds when: one of `any` is present (if `any`
/// is given), all of `all` are present, and `regex` matches (if given).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// At least one of these literals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<String>,
    /// Every one of these literals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<String>,
    /// A regular expression (Rust `regex` syntax), checked only where the literals hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Literals match ASCII case-insensitively (the regex can use `(?i)` itself).
    #[serde(default)]
    pub case_insensitive: bool,
    /// Literals match only as whole words: no letter, digit or `_` right before or after
    /// (like `grep -w`), so `500` does not hit inside `15003`.
    #[serde(default)]
    pub whole_words: bool,
}

impl Matcher {
    /// Whether nothing at all is required.
    pub fn is_empty(&self) -> bool {
        self.any.is_empty() && self.all.is_empty() && self.regex.is_none()
    }
}

/// Origin selectors; every given one must hold. Globs take `*` and `?`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Source kinds: `docker`, `file`, `stdin`, `replay`, `qa`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    /// Container name (or file path) globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container: Vec<String>,
    /// Image globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image: Vec<String>,
    /// Label equalities; the value may be a glob.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Selector {
    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
            && self.container.is_empty()
            && self.image.is_empty()
            && self.labels.is_empty()
    }
}

/// Inline examples of a rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    /// Lines the rule must match.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub should_match: Vec<Example>,
    /// Lines the rule must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_match: Vec<Example>,
}

/// An example line, optionally with the level and origin it arrives with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Example {
    /// Just the line.
    Line(String),
    /// The line with context.
    Full {
        /// The line text.
        line: String,
        /// Its parsed level.
        #[serde(default)]
        level: Option<Level>,
        /// Its container name.
        #[serde(default)]
        container: Option<String>,
    },
}

impl Example {
    /// The example's text.
    pub fn line(&self) -> &str {
        match self {
            Example::Line(l) | Example::Full { line: l, .. } => l,
        }
    }
}

/// A located error in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// The field at fault, e.g. `rules[3].match.regex`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuleError {}

/// A rule file read from disk, with its text kept for locating errors.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    /// Where it came from.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// Its rules.
    pub rules: Vec<Rule>,
}

impl LoadedFile {
    /// The line range (0-based, end exclusive) of the `rule`-th item of the `rules:` list.
    fn rule_block(&self, rule: usize) -> Option<(usize, usize)> {
        let lines: Vec<&str> = self.text.lines().collect();
        let list = lines
            .iter()
            .position(|l| l.trim_end() == "rules:" || l.starts_with("rules:"))?;
        let first = (list + 1..lines.len()).find(|&i| lines[i].trim_start().starts_with("- "))?;
        let indent = indent_of(lines[first]);
        let starts: Vec<usize> = (first..lines.len())
            .filter(|&i| indent_of(lines[i]) == indent && lines[i].trim_start().starts_with("- "))
            .collect();
        let start = *starts.get(rule)?;
        let end = starts.get(rule + 1).copied().unwrap_or(lines.len());
        Some((start, end))
    }

    /// Locate a rule's field (the last segment of a dotted path such as `match.regex`):
    /// the 1-based line and column of `field:` inside the rule's block, or of the rule's
    /// first line when the field is not written out.
    pub fn locate(&self, rule: usize, field: &str) -> (usize, usize) {
        let Some((start, end)) = self.rule_block(rule) else {
            return (0, 0);
        };
        let key = field.rsplit('.').next().unwrap_or(field);
        let key = key.split('[').next().unwrap_or(key);
        let lines: Vec<&str> = self.text.lines().collect();
        for (n, l) in lines.iter().enumerate().take(end).skip(start) {
            let t = l.trim_start().trim_start_matches('-').trim_start();
            if t.starts_with(&format!("{key}:")) {
                return (n + 1, l.len() - t.len() + 1);
            }
        }
        let t = lines[start]
            .trim_start()
            .trim_start_matches('-')
            .trim_start();
        (start + 1, lines[start].len() - t.len() + 1)
    }

    /// Locate `needle` (an example) in a rule's block: after the `examples:` key, then
    /// after the `list:` key below it (`match` or `no_match`).
    pub fn locate_text(&self, rule: usize, list: &str, needle: &str) -> (usize, usize) {
        let Some((_, end)) = self.rule_block(rule) else {
            return (0, 0);
        };
        let (examples, _) = self.locate(rule, "examples");
        let lines: Vec<&str> = self.text.lines().collect();
        let key = format!("{list}:");
        let from = (examples..end)
            .find(|&i| lines[i].trim_start().starts_with(&key))
            .unwrap_or(examples.saturating_sub(1));
        for (n, l) in lines.iter().enumerate().take(end).skip(from) {
            if let Some(col) = l.find(needle) {
                return (n + 1, col + 1);
            }
        }
        (from + 1, 1)
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Expand paths: a directory gives its `*.yaml`/`*.yml` files, sorted; a file is itself.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RuleError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| io_error(p, &e))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn io_error(path: &Path, e: &std::io::Error) -> RuleError {
    RuleError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read: {e}"),
    }
}

/// Read and deserialize one file. Structural errors carry serde's location.
pub fn load_file(path: &Path) -> Result<LoadedFile, RuleError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, &e))?;
    parse_file(path, text)
}

/// Deserialize rule file text read from `path`.
pub fn parse_file(path: &Path, text: String) -> Result<LoadedFile, RuleError> {
    match yaml_serde::from_str::<RuleFile>(&text) {
        Ok(f) => Ok(LoadedFile {
            path: path.to_path_buf(),
            text,
            rules: f.rules,
        }),
        Err(e) => {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let msg = e.to_string();
            // serde_yaml-style messages read "rules[2].match: unknown field `x`, ... at line
            // N column M"; split the field path off the front and the position off the end.
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            let (field, message) = match msg.split_once(": ") {
                Some((f, m)) if !f.contains(' ') => (f.to_string(), m.to_string()),
                _ => (String::new(), msg),
            };
            Err(RuleError {
                file: path.to_path_buf(),
                line,
                column,
                field,
                message,
            })
        }
    }
}
