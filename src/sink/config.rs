//! Ticket settings. Secrets are never written here, only where to read them: an
//! environment variable or a file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::duration;

/// The `tickets:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsConfig {
    /// Send incidents through classification to the sinks (`medic run`; `medic replay`
    /// with `--tickets`).
    pub enabled: bool,
    /// At most one update comment per ticket per this much event time (the seed's
    /// `ERROR_COOLDOWN_MINUTES`); updates in between are folded into the next comment's
    /// counts.
    #[serde(with = "duration")]
    pub cooldown: Duration,
    /// Resolve the ticket when its incident resolves (quiet for `window.resolve_after`);
    /// a recurrence then reopens it as a regression.
    pub resolve_when_quiet: bool,
    /// Labels added to every ticket, on top of `AI-Fix`, `auto-detected`, the error type
    /// and `medic-fp-<fingerprint>`.
    pub labels: Vec<String>,
    /// Per-request timeout of the HTTP sinks.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// First retry delay of a failed action; doubled per attempt, jittered.
    #[serde(with = "duration")]
    pub retry_initial: Duration,
    /// Longest retry delay.
    #[serde(with = "duration")]
    pub retry_max: Duration,
    /// Link to medic's API put into tickets of remote sinks (e.g. `http://medic:9464`).
    pub public_url: Option<String>,
    /// The embedded ticket store.
    pub store: StoreConfig,
    /// Jira Cloud (REST v3) or Server/Data Center (REST v2).
    pub jira: Option<JiraConfig>,
    /// GitHub Issues.
    pub github: Option<GitHubConfig>,
    /// A generic signed webhook.
    pub webhook: Option<WebhookConfig>,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            enabled: true,
            cooldown: Duration::from_secs(15 * 60),
            resolve_when_quiet: true,
            labels: Vec::new(),
            timeout: Duration::from_secs(15),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            public_url: None,
            store: StoreConfig::default(),
            jira: None,
            github: None,
            webhook: None,
        }
    }
}

/// The embedded store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Keep tickets in the state directory's database (served by the HTTP API).
    pub enabled: bool,
    /// Ticket key prefix: `MEDIC` gives `MEDIC-1`, `MEDIC-2`, ...
    pub key_prefix: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            enabled: true,
            key_prefix: "MEDIC".into(),
        }
    }
}

/// How Jira authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JiraAuth {
    /// Basic with `email` and an API token (Jira Cloud).
    #[default]
    Basic,
    /// `Authorization: Bearer <personal access token>` (Server/Data Center).
    Bearer,
}

/// Jira.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JiraConfig {
    /// Site URL, e.g. `https://example.atlassian.net`.
    pub url: String,
    /// 3 (Cloud: Atlassian Document Format) or 2 (Server/DC: plain text).
    pub api_version: u8,
    /// Project key, e.g. `OPS`.
    pub project: String,
    /// Issue type name.
    pub issue_type: String,
    /// Authentication scheme.
    pub auth: JiraAuth,
    /// Account email (basic auth).
    pub email: Option<String>,
    /// Variable holding the API token or PAT.
    pub token_env: Option<String>,
    /// File holding the token; wins over the variable.
    pub token_file: Option<PathBuf>,
    /// Priority name per severity; a severity missing here sends no priority.
    pub priorities: BTreeMap<String, String>,
    /// Transition names tried, in order, to reopen a done issue.
    pub reopen_transitions: Vec<String>,
    /// Transition names tried, in order, to resolve an issue.
    pub resolve_transitions: Vec<String>,
}

impl Default for JiraConfig {
    fn default() -> Self {
        let priorities = [
            ("critical", "Highest"),
            ("high", "High"),
            ("medium", "Medium"),
            ("low", "Low"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        JiraConfig {
            url: String::new(),
            api_version: 3,
            project: String::new(),
            issue_type: "Bug".into(),
            auth: JiraAuth::Basic,
            email: None,
            token_env: Some("JIRA_API_TOKEN".into()),
            token_file: None,
            priorities,
            reopen_transitions: vec!["Reopen".into(), "To Do".into(), "Reopened".into()],
            resolve_transitions: vec!["Done".into(), "Resolve".into(), "Close".into()],
        }
    }
}

/// GitHub Issues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitHubConfig {
    /// API base: `https://api.github.com`, or `https://HOST/api/v3` for Enterprise Server.
    pub api_url: String,
    /// `owner/name`.
    pub repo: String,
    /// Variable holding the token.
    pub token_env: Option<String>,
    /// File holding the token; wins over the variable.
    pub token_file: Option<PathBuf>,
}

impl Default for GitHubConfig {
    fn default() -> Self {
        GitHubConfig {
            api_url: "https://api.github.com".into(),
            repo: String::new(),
            token_env: Some("GITHUB_TOKEN".into()),
            token_file: None,
        }
    }
}

/// A webhook.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
    /// Variable holding the HMAC-SHA256 secret; without one, deliveries are unsigned.
    pub secret_env: Option<String>,
    /// File holding the secret; wins over the variable.
    pub secret_file: Option<PathBuf>,
}

/// A secret for a sink, with the setting named in the error.
pub(crate) fn secret(
    what: &str,
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<Option<String>, super::SinkError> {
    crate::config::read_secret(file, env)
        .map_err(|e| super::SinkError::Config(format!("{what}: {e}")))
}
