//! Tickets: the sinks escalated incidents end in, and the durable outbox between them.
//!
//! This stage owns the [`Sink`] contract and its implementations (the embedded store,
//! Jira, GitHub Issues, a signed webhook), ticket rendering, and delivery: upsert by
//! fingerprint, a comment cooldown, reopen on regression, and the outbox that writes
//! every action to the store before it is sent and retries it until acknowledged.

pub mod config;
pub mod github;
pub mod jira;
pub mod outbox;
pub mod render;
pub mod store;
pub mod webhook;

use std::future::Future;

pub use config::TicketsConfig;
pub use render::Body;
pub use store::Store;

use crate::event::Incident;

/// A sink error. Whether it is worth retrying is [`SinkError::retryable`].
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A setting is wrong or a secret is missing.
    #[error("{0}")]
    Config(String),
    /// The remote answered with an error status.
    #[error("{sink} returned {status} for {what}: {message}")]
    Status {
        /// Sink name.
        sink: &'static str,
        /// What was attempted.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// The remote's error text.
        message: String,
    },
    /// No answer: timeout, refused connection, broken body.
    #[error("{sink}: {what} failed: {message}")]
    Transport {
        /// Sink name.
        sink: &'static str,
        /// What was attempted.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The remote's answer could not be understood.
    #[error("{sink}: unexpected response to {what}: {message}")]
    Response {
        /// Sink name.
        sink: &'static str,
        /// What was attempted.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The embedded store failed.
    #[error("ticket store: {0}")]
    Store(String),
}

impl SinkError {
    /// Whether trying again later may succeed. Requests the remote rejects as malformed
    /// (400, 404, 405, 410, 413, 422) will not; auth errors may, once a token is fixed.
    pub fn retryable(&self) -> bool {
        match self {
            SinkError::Status { status, .. } => {
                !matches!(status, 400 | 404 | 405 | 410 | 413 | 422)
            }
            SinkError::Transport { .. } | SinkError::Store(_) => true,
            SinkError::Config(_) | SinkError::Response { .. } => false,
        }
    }
}

impl From<rusqlite::Error> for SinkError {
    fn from(e: rusqlite::Error) -> Self {
        SinkError::Store(e.to_string())
    }
}

/// Whether a ticket is open or done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    /// Open (any not-done state).
    Open,
    /// Resolved, closed, done.
    Resolved,
}

impl TicketStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::Resolved => "resolved",
        }
    }
}

/// A ticket in a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRef {
    /// The sink's key: `MEDIC-12`, `OPS-123`, `42` (a GitHub issue number).
    pub key: String,
    /// Open or done.
    pub status: TicketStatus,
    /// A link for humans, where the sink has one.
    pub url: Option<String>,
}

/// A ticket to create.
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// Fingerprint in hex: the deduplication key.
    pub fingerprint: String,
    /// One-line title.
    pub title: String,
    /// The body.
    pub body: Body,
    /// Labels: `AI-Fix`, `auto-detected`, the error type, `medic-fp-<fingerprint>`, and
    /// configured extras. Never chosen by a model.
    pub labels: Vec<String>,
    /// Severity name (`critical` ... `low`), mapped to a priority by the sink.
    pub severity: &'static str,
    /// The notification this ticket comes from.
    pub escalated: crate::event::Escalated,
    /// The action's idempotency key, written into the ticket so a retry can find it.
    pub idem: String,
}

/// A comment, with the idempotency key that lets a retry see it was already posted.
#[derive(Debug, Clone)]
pub struct Note {
    /// The text.
    pub body: Body,
    /// Idempotency key.
    pub idem: String,
    /// The incident's record count at this notification.
    pub count: u64,
}

/// The ticket-system contract. Every sink upserts by the `medic-fp-<fingerprint>` label.
pub trait Sink: Send + Sync {
    /// The sink's name in metrics, the outbox and errors.
    fn name(&self) -> &'static str;

    /// Whether the sink keeps no state medic can read back (the webhook): delivery then
    /// trusts the store's record of what was sent.
    fn stateless(&self) -> bool {
        false
    }

    /// Create a ticket.
    fn create(&self, t: &NewTicket) -> impl Future<Output = Result<TicketRef, SinkError>> + Send;

    /// The ticket for a fingerprint: the open one if any, else the most recent.
    fn find_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> impl Future<Output = Result<Option<TicketRef>, SinkError>> + Send;

    /// The open ticket for a fingerprint.
    fn find_open_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> impl Future<Output = Result<Option<TicketRef>, SinkError>> + Send {
        async move {
            Ok(self
                .find_by_fingerprint(fingerprint)
                .await?
                .filter(|t| t.status == TicketStatus::Open))
        }
    }

    /// A ticket by key; `None` if it no longer exists.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<TicketRef>, SinkError>> + Send;

    /// Record the incident's latest count without a comment: an update inside the comment
    /// cooldown. Trackers with no count field carry counts only in comments, so the
    /// default does nothing.
    fn touch(&self, key: &str, count: u64) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = (key, count);
        async { Ok(()) }
    }

    /// Add a comment (an update: counts, time range, new samples).
    fn comment(&self, key: &str, note: &Note)
    -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Whether the ticket's body or a comment carries this idempotency key.
    fn has_note(
        &self,
        key: &str,
        idem: &str,
    ) -> impl Future<Output = Result<bool, SinkError>> + Send;

    /// Reopen a done ticket as a regression, with a comment.
    fn reopen(&self, key: &str, note: &Note) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Resolve an open ticket, with a comment. The status changes before the comment is
    /// added, so a ticket found done without the comment is a resolve to finish.
    fn resolve(&self, key: &str, note: &Note)
    -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// The idempotency key of one notification of an incident: the incident id and the
/// action (state, count and time at that notification).
pub fn idem_key(inc: &Incident) -> String {
    format!(
        "{}:{}:{}:{}",
        inc.id,
        inc.state.as_str(),
        inc.count,
        inc.last_seen_ms
    )
}

/// The label that deduplicates tickets by fingerprint.
pub fn fingerprint_label(fingerprint: &str) -> String {
    format!("medic-fp-{fingerprint}")
}

/// Turn a reqwest error into a sink error.
pub(crate) fn transport(sink: &'static str, what: &'static str, e: reqwest::Error) -> SinkError {
    let mut message = e.to_string();
    let mut cur = std::error::Error::source(&e);
    while let Some(c) = cur {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cur = c.source();
    }
    SinkError::Transport {
        sink,
        what,
        message,
    }
}

/// Check a response's status; on an error status, read the body into the error.
pub(crate) async fn checked(
    sink: &'static str,
    what: &'static str,
    r: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, SinkError> {
    let r = r.map_err(|e| transport(sink, what, e))?;
    if r.status().is_success() {
        return Ok(r);
    }
    let status = r.status().as_u16();
    let message: String = r
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(500)
        .collect();
    Err(SinkError::Status {
        sink,
        what,
        status,
        message,
    })
}

/// Read a JSON response body.
pub(crate) async fn json_body(
    sink: &'static str,
    what: &'static str,
    r: reqwest::Response,
) -> Result<serde_json::Value, SinkError> {
    let text = r.text().await.map_err(|e| transport(sink, what, e))?;
    serde_json::from_str(&text).map_err(|e| SinkError::Response {
        sink,
        what,
        message: format!("{e}: {}", text.chars().take(200).collect::<String>()),
    })
}

/// The configured HTTP sinks and the store behind one type, so the outbox can hold them in
/// one list.
#[derive(Debug)]
pub enum AnySink {
    /// The embedded store.
    Store(std::sync::Arc<Store>),
    /// Jira.
    Jira(Box<jira::Jira>),
    /// GitHub Issues.
    GitHub(github::GitHub),
    /// Webhook.
    Webhook(webhook::Webhook),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnySink::Store($s) => $e,
            AnySink::Jira($s) => $e,
            AnySink::GitHub($s) => $e,
            AnySink::Webhook($s) => $e,
        }
    };
}

impl Sink for AnySink {
    fn name(&self) -> &'static str {
        each!(self, s => s.name())
    }
    fn stateless(&self) -> bool {
        each!(self, s => s.stateless())
    }
    async fn create(&self, t: &NewTicket) -> Result<TicketRef, SinkError> {
        each!(self, s => s.create(t).await)
    }
    async fn find_by_fingerprint(&self, fp: &str) -> Result<Option<TicketRef>, SinkError> {
        each!(self, s => s.find_by_fingerprint(fp).await)
    }
    async fn get(&self, key: &str) -> Result<Option<TicketRef>, SinkError> {
        each!(self, s => s.get(key).await)
    }
    async fn touch(&self, key: &str, count: u64) -> Result<(), SinkError> {
        each!(self, s => s.touch(key, count).await)
    }
    async fn comment(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        each!(self, s => s.comment(key, note).await)
    }
    async fn has_note(&self, key: &str, idem: &str) -> Result<bool, SinkError> {
        each!(self, s => s.has_note(key, idem).await)
    }
    async fn reopen(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        each!(self, s => s.reopen(key, note).await)
    }
    async fn resolve(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        each!(self, s => s.resolve(key, note).await)
    }
}

/// Build the configured sinks: the store first (when enabled), then Jira, GitHub and the
/// webhook. Secrets are read now, so a missing one is a startup error.
pub fn build(
    cfg: &TicketsConfig,
    store: &std::sync::Arc<Store>,
) -> Result<Vec<AnySink>, SinkError> {
    let mut out = Vec::new();
    if cfg.store.enabled {
        out.push(AnySink::Store(std::sync::Arc::clone(store)));
    }
    if let Some(j) = &cfg.jira {
        out.push(AnySink::Jira(Box::new(jira::Jira::new(j, cfg.timeout)?)));
    }
    if let Some(g) = &cfg.github {
        out.push(AnySink::GitHub(github::GitHub::new(g, cfg.timeout)?));
    }
    if let Some(w) = &cfg.webhook {
        out.push(AnySink::Webhook(webhook::Webhook::new(w, cfg.timeout)?));
    }
    Ok(out)
}

/// An HTTP client for a sink.
pub(crate) fn http_client(
    sink: &'static str,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, SinkError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SinkError::Config(format!("tickets.{sink}: HTTP client: {e}")))
}
