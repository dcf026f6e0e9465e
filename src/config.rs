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

/// Environment variables that override the configuration file (the seed's compose names
/// among them), in the order they are applied: (name, what it sets).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("MEDIC_STATE_DIR", "state_dir"),
    ("MEDIC_LISTEN", "api.listen"),
    (
        "MONITORED_CONTAINERS",
        "sources.docker.include (comma-separated name globs)",
    ),
    (
        "CHECK_INTERVAL_SECONDS",
        "window.group_wait (how long a new incident collects before it is reported)",
    ),
    ("ERROR_COOLDOWN_MINUTES", "tickets.cooldown"),
    (
        "JIRA_API_URL",
        "tickets.jira.url (enables Jira; the token is read from JIRA_API_TOKEN)",
    ),
    ("JIRA_PROJECT_KEY", "tickets.jira.project"),
    ("JIRA_EMAIL", "tickets.jira.email"),
    (
        "GITHUB_REPOSITORY",
        "tickets.github.repo (enables GitHub; the token is read from GITHUB_TOKEN)",
    ),
    (
        "MEDIC_WEBHOOK_URL",
        "tickets.webhook.url (the secret is read from MEDIC_WEBHOOK_SECRET if set)",
    ),
    (
        "ANTHROPIC_API_KEY",
        "escalate.llm: the Anthropic API with this key, unless an LLM is configured",
    ),
    (
        "OPENAI_API_KEY",
        "escalate.llm: an OpenAI-compatible API with this key, unless an LLM is configured",
    ),
    ("LLM_MODEL", "escalate.llm.model"),
    ("LLM_BASE_URL", "escalate.llm.base_url"),
    ("QA_FLOWS", "qa.flows (comma-separated paths)"),
];

impl Config {
    /// Apply [`ENV_OVERRIDES`] from `var`; a value that does not parse is an error naming
    /// the variable.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let bad = |name: &str, message: String| ConfigError::Invalid {
            path: format!("${name}"),
            line: 0,
            column: 0,
            message,
        };
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("MEDIC_STATE_DIR") {
            self.state_dir = PathBuf::from(v);
        }
        if let Some(v) = get("MEDIC_LISTEN") {
            self.api.listen = v
                .parse()
                .map_err(|e| bad("MEDIC_LISTEN", format!("{v:?}: {e}")))?;
        }
        if let Some(v) = get("MONITORED_CONTAINERS") {
            self.sources.docker.include = list(&v);
        }
        let number = |name: &str, v: &str| -> Result<u64, ConfigError> {
            v.trim()
                .parse()
                .map_err(|_| bad(name, format!("{v:?} is not a whole number")))
        };
        if let Some(v) = get("CHECK_INTERVAL_SECONDS") {
            self.window.group_wait =
                std::time::Duration::from_secs(number("CHECK_INTERVAL_SECONDS", &v)?);
        }
        if let Some(v) = get("ERROR_COOLDOWN_MINUTES") {
            self.tickets.cooldown =
                std::time::Duration::from_secs(60 * number("ERROR_COOLDOWN_MINUTES", &v)?);
        }
        if let Some(v) = get("JIRA_API_URL") {
            self.tickets.jira.get_or_insert_with(Default::default).url = v;
        }
        if let Some(v) = get("JIRA_PROJECT_KEY") {
            self.tickets
                .jira
                .get_or_insert_with(Default::default)
                .project = v;
        }
        if let Some(v) = get("JIRA_EMAIL") {
            self.tickets.jira.get_or_insert_with(Default::default).email = Some(v);
        }
        if let Some(v) = get("GITHUB_REPOSITORY") {
            self.tickets
                .github
                .get_or_insert_with(Default::default)
                .repo = v;
        }
        if let Some(v) = get("MEDIC_WEBHOOK_URL") {
            let w = self.tickets.webhook.get_or_insert_with(Default::default);
            w.url = v;
            if get("MEDIC_WEBHOOK_SECRET").is_some() {
                w.secret_env = Some("MEDIC_WEBHOOK_SECRET".into());
            }
        }
        if self.escalate.llm.is_none() {
            use crate::escalate::config::{LlmConfig, Provider};
            if get("ANTHROPIC_API_KEY").is_some() {
                self.escalate.llm = Some(LlmConfig {
                    provider: Provider::Anthropic,
                    api_key_env: Some("ANTHROPIC_API_KEY".into()),
                    ..LlmConfig::default()
                });
            } else if get("OPENAI_API_KEY").is_some() {
                self.escalate.llm = Some(LlmConfig {
                    provider: Provider::Openai,
                    model: "gpt-4o-mini".into(),
                    api_key_env: Some("OPENAI_API_KEY".into()),
                    ..LlmConfig::default()
                });
            }
        }
        if let Some(llm) = self.escalate.llm.as_mut() {
            if let Some(v) = get("LLM_MODEL") {
                llm.model = v;
            }
            if let Some(v) = get("LLM_BASE_URL") {
                llm.base_url = Some(v);
            }
        }
        if let Some(v) = get("QA_FLOWS") {
            self.qa.flows = list(&v).into_iter().map(PathBuf::from).collect();
        }
        Ok(())
    }
}

/// A secret from a file (wins) or an environment variable; `Ok(None)` when neither is set.
pub fn read_secret(
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<Option<String>, String> {
    if let Some(f) = file {
        let s =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        return Ok(Some(s.trim_end().to_string()));
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(format!("environment variable {var} is not set")),
        };
    }
    Ok(None)
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
    fn environment_overrides_map_onto_the_config() {
        let env: std::collections::HashMap<&str, &str> = [
            ("MONITORED_CONTAINERS", "web-*, api"),
            ("CHECK_INTERVAL_SECONDS", "2"),
            ("ERROR_COOLDOWN_MINUTES", "30"),
            ("JIRA_API_URL", "https://x.atlassian.net"),
            ("JIRA_PROJECT_KEY", "OPS"),
            ("ANTHROPIC_API_KEY", "k"),
            ("MEDIC_LISTEN", "0.0.0.0:9464"),
        ]
        .into_iter()
        .collect();
        let mut c = Config::default();
        c.apply_env(|k| env.get(k).map(|v| v.to_string()))
            .expect("valid");
        assert_eq!(c.sources.docker.include, ["web-*", "api"]);
        assert_eq!(c.window.group_wait, std::time::Duration::from_secs(2));
        assert_eq!(c.tickets.cooldown, std::time::Duration::from_secs(1800));
        let j = c.tickets.jira.expect("jira");
        assert_eq!(
            (j.url.as_str(), j.project.as_str()),
            ("https://x.atlassian.net", "OPS")
        );
        assert_eq!(
            c.escalate.llm.expect("llm").api_key_env.as_deref(),
            Some("ANTHROPIC_API_KEY")
        );
        assert_eq!(c.api.listen.to_string(), "0.0.0.0:9464");
        let e = Config::default()
            .apply_env(|k| (k == "ERROR_COOLDOWN_MINUTES").then(|| "soon".to_string()))
            .expect_err("bad number");
        assert!(e.to_string().contains("$ERROR_COOLDOWN_MINUTES"), "{e}");
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
