//! Escalation settings: the LLM provider, its limits, the classification cache, the budget
//! and extra redaction patterns. Secrets are never written here: only the name of the
//! environment variable or file that holds them.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::duration;

/// The `escalate:` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalateConfig {
    /// The LLM classifier; null means the rule-based classifier only.
    pub llm: Option<LlmConfig>,
    /// Classification cache by fingerprint.
    pub cache: CacheConfig,
    /// LLM spending limits.
    pub budget: BudgetConfig,
    /// Redaction applied before anything leaves the host.
    pub redact: RedactConfig,
}

/// Which wire protocol an LLM endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Anthropic Messages API (`POST /v1/messages`).
    Anthropic,
    /// OpenAI-compatible Chat Completions (`POST /v1/chat/completions`): OpenAI, Azure
    /// OpenAI v1, vLLM, llama.cpp server, Ollama.
    Openai,
}

impl Provider {
    /// The lowercase name used in metrics and the classifier version.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::Openai => "openai",
        }
    }
}

/// How the API key is sent to an OpenAI-compatible endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI, vLLM, llama.cpp, Ollama).
    #[default]
    Bearer,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKey,
}

/// An LLM endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// The wire protocol.
    pub provider: Provider,
    /// The model name sent in each request.
    pub model: String,
    /// Scheme, host and any path prefix; `/v1/messages` or `/v1/chat/completions` is
    /// appended. Null means the provider's public API.
    pub base_url: Option<String>,
    /// Environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// File holding the API key (trailing whitespace ignored); wins over the variable.
    pub api_key_file: Option<PathBuf>,
    /// How an OpenAI-compatible endpoint receives the key.
    pub key_header: KeyHeader,
    /// The `anthropic-version` header.
    pub anthropic_version: String,
    /// Per-request timeout.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Retries after a 429, a 5xx, a timeout or a connection error.
    pub max_retries: u32,
    /// First backoff; doubled per retry, jittered, capped at 30 s. A `retry-after` header
    /// wins when present.
    #[serde(with = "duration")]
    pub backoff: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// `max_tokens` of each answer.
    pub max_tokens: u32,
    /// Sample lines included in a prompt at most.
    pub max_samples: usize,
    /// Characters per sample at most (stack traces are long).
    pub max_sample_chars: usize,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            provider: Provider::Anthropic,
            model: "claude-sonnet-4-5".into(),
            base_url: None,
            api_key_env: None,
            api_key_file: None,
            key_header: KeyHeader::Bearer,
            anthropic_version: "2023-06-01".into(),
            timeout: Duration::from_secs(30),
            max_retries: 2,
            backoff: Duration::from_millis(500),
            concurrency: 2,
            max_tokens: 1024,
            max_samples: 4,
            max_sample_chars: 2000,
        }
    }
}

impl LlmConfig {
    /// The base URL, defaulted per provider, without a trailing slash.
    pub fn base(&self) -> String {
        let b = self
            .base_url
            .clone()
            .unwrap_or_else(|| match self.provider {
                Provider::Anthropic => "https://api.anthropic.com".into(),
                Provider::Openai => "https://api.openai.com".into(),
            });
        b.trim_end_matches('/').to_string()
    }
}

/// The classification cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Fingerprints kept at most (least recently used evicted).
    pub capacity: usize,
    /// A classification older than this is asked for again.
    #[serde(with = "duration")]
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 10_000,
            ttl: Duration::from_secs(7 * 86_400),
        }
    }
}

/// LLM spending limits; beyond them the rule classifier answers, and that is counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// LLM calls per rolling hour at most (retries and repairs count).
    pub max_calls_per_hour: u32,
    /// Tokens (prompt plus answer) per UTC day at most.
    pub max_tokens_per_day: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            max_calls_per_hour: 120,
            max_tokens_per_day: 2_000_000,
        }
    }
}

/// Extra redaction.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactConfig {
    /// Regexes whose matches are replaced by `[REDACTED:custom]`, on top of the built-in
    /// patterns (emails, tokens, API keys, URL passwords, key=value secrets, JWTs, private
    /// keys, card numbers).
    pub patterns: Vec<String>,
}
