//! Parse configuration: input format, header format, size bounds and multiline joining.

use serde::{Deserialize, Serialize};

/// How to read each line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Docker json-file when the line is such a record, else application JSON when it is an
    /// object, else plain text.
    #[default]
    Auto,
    /// Docker json-file records (`{"log": "...", "stream": "...", "time": "..."}`).
    DockerJson,
    /// Plain text, with an optional log-format header.
    Plain,
    /// One application JSON object per line.
    Json,
}

/// Parse settings. Built into a [`crate::parse::Parser`] with [`crate::parse::Parser::new`],
/// which validates everything once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParseConfig {
    /// Input format.
    pub format: Format,
    /// A LogPAI-style header format such as `<Date> <Time> <Level> <Component>: <Content>`.
    /// Text between placeholders is a regular expression; `<Content>` marks the message.
    pub log_format: Option<String>,
    /// Lines longer than this many bytes are cut (and counted).
    pub max_line_bytes: usize,
    /// Multiline joining (stack traces, Docker partial lines).
    pub multiline: MultilineConfig,
    /// The year assumed for timestamps that carry none (syslog's `Jun 14 15:16:01`);
    /// unset means the current year.
    pub syslog_year: Option<i32>,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            format: Format::Auto,
            log_format: None,
            max_line_bytes: default_max_line_bytes(),
            multiline: MultilineConfig::default(),
            syslog_year: None,
        }
    }
}

fn default_max_line_bytes() -> usize {
    256 * 1024
}

/// Bounds on joining continuation lines into one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultilineConfig {
    /// Join stack traces and Docker partial lines at all.
    pub enabled: bool,
    /// The most physical lines in one event; more start a new event (counted).
    pub max_lines: u32,
    /// The most bytes in one event; more start a new event (counted).
    pub max_bytes: usize,
    /// How long a pending event may wait for a continuation before it is emitted, in
    /// milliseconds. Only streaming sources use it; files flush at end of input.
    pub wait_ms: u64,
}

impl Default for MultilineConfig {
    fn default() -> Self {
        MultilineConfig {
            enabled: true,
            max_lines: 500,
            max_bytes: 512 * 1024,
            wait_ms: 1000,
        }
    }
}
