//! The configuration file: one YAML document for every stage. Unknown keys are errors;
//! every error names the file, line and column. Each stage owns its own section's type;
//! this module only assembles them, like the pipeline.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::api::ApiConfig;
use crate::escalate::EscalateConfig;
use crate::fingerprint::MinerConfig;
use crate::parse::ParseConfig;
use crate::qa::QaConfig;
use crate::sink::TicketsConfig;
use crate::source::SourcesConfig;
use crate::window::WindowConfig;

/// The commented defaults printed by `medic config --print-defaults`.
pub const DEFAULTS_YAML: &str = include_str!("config.yaml");

/// Everything medic can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Rule files or directories; empty means `./rules` if present, else the built-in rules.
    pub rules: Vec<PathBuf>,
    /// Where `medic run` keeps read positions and, by default, its incident log.
    pub state_dir: PathBuf,
    /// Where incidents go.
    pub output: OutputConfig,
    /// Live sources (`medic run`, `medic tap`).
    pub sources: SourcesConfig,
    /// The HTTP server of `medic run`: metrics, health, JSON API.
    pub api: ApiConfig,
    /// Parsing.
    pub parse: ParseConfig,
    /// Template mining.
    pub fingerprint: MinerConfig,
    /// Incident windowing.
    pub window: WindowConfig,
    /// Classification of incidents: LLM, cache, budget, redaction.
    pub escalate: EscalateConfig,
    /// Ticket sinks and the outbox.
    pub tickets: TicketsConfig,
    /// Browser flows run on a schedule by `medic run`.
    pub qa: QaConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rules: Vec::new(),
            state_dir: PathBuf::from("/var/lib/medic"),
            output: OutputConfig::default(),
            sources: SourcesConfig::default(),
            api: ApiConfig::default(),
            parse: ParseConfig::default(),
            fingerprint: MinerConfig::default(),
            window: WindowConfig::default(),
            escalate: EscalateConfig::default(),
            tickets: TicketsConfig::default(),
            qa: QaConfig::default(),
        }
    }
}

/// Incident outputs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// JSON-lines file every incident notification is appended to; null means
    /// `<state_dir>/incidents.jsonl`.
    pub incidents: Option<PathBuf>,
}

impl Config {
    /// The incident log path.
    pub fn incidents_path(&self) -> PathBuf {
        self.output
            .incidents
            .clone()
            .unwrap_or_else(|| self.state_dir.join("incidents.jsonl"))
    }
}

/// A configuration error, located.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The path.
        path: String,
        /// The OS error (in the message, not a separate cause, so it prints once).
        error: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The path.
        path: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong, with the field path.
        message: String,
    },
}

impl Config {
    /// Read a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            error: source,
        })?;
        Config::parse(&path.display().to_string(), &text)
    }

    /// Parse configuration text; `name` is used in errors.
    pub fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
        yaml_serde::from_str::<Config>(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let message = e.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string();
            ConfigError::Invalid {
                path: name.to_string(),
                line,
                column,
                message,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_defaults_are_the_defaults() {
        let parsed = Config::parse("defaults", DEFAULTS_YAML).expect("the defaults parse");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn printed_defaults_mention_every_key() {
        // Serialise the defaults and check every key appears in the commented file, so a
        // new setting cannot be left out of `--print-defaults`.
        let value = yaml_serde::to_value(Config::default()).expect("serialise");
        let mut missing = Vec::new();
        fn walk(v: &yaml_serde::Value, path: &str, missing: &mut Vec<String>) {
            if let yaml_serde::Value::Mapping(m) = v {
                for (k, v) in m {
                    let k = k.as_str().unwrap_or_default();
                    if !DEFAULTS_YAML.contains(&format!("{k}:")) {
                        missing.push(format!("{path}{k}"));
                    }
                    walk(v, &format!("{path}{k}."), missing);
                }
            }
        }
        walk(&value, "", &mut missing);
        assert!(missing.is_empty(), "not in src/config.yaml: {missing:?}");
    }

    #[test]
    fn round_trip() {
        let mut c = Config::default();
        c.window.workers = 4;
        c.parse.log_format = Some("<Level> <Content>".into());
        let text = yaml_serde::to_string(&c).expect("serialise");
        assert_eq!(Config::parse("x", &text).expect("parse"), c);
    }

    #[test]
    fn errors_name_file_line_column_and_field() {
        let err = Config::parse(
            "medic.yaml",
            "window:\n  group_wait: 30s\n  grup_interval: 5m\n",
        )
        .expect_err("typo");
        let s = err.to_string();
        assert!(
            s.starts_with("medic.yaml:3:3: window: unknown field `grup_interval`"),
            "{s}"
        );
        let err = Config::parse("medic.yaml", "window:\n  resolve_after: soon\n")
            .expect_err("bad duration");
        assert!(err.to_string().starts_with("medic.yaml:2:"), "{err}");
        assert!(
            err.to_string().contains("invalid duration \"soon\""),
            "{err}"
        );
    }
}
