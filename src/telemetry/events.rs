//! Internal events: the one place metric names and labels are written, as Vector does.
//! Stages keep plain counters; the pipeline wiring turns their deltas into these events.
//! Labels are low-cardinality only: source kinds, reasons, rule ids, severities, states,
//! stages; never a fingerprint, a container id or a ticket key.

use metrics::{counter, gauge, histogram};

/// Lines and bytes read by sources of one kind (`docker`, `file`, `stdin`).
pub struct LinesRead {
    /// Source kind.
    pub kind: &'static str,
    /// Lines.
    pub lines: u64,
    /// Bytes, newlines included.
    pub bytes: u64,
}

impl LinesRead {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_lines_read_total", "source_kind" => self.kind).increment(self.lines);
        counter!("medic_bytes_read_total", "source_kind" => self.kind).increment(self.bytes);
    }
}

/// Lines that left the fast path, by reason.
pub struct ParseFallbacks {
    /// The reason's snake_case name.
    pub reason: &'static str,
    /// How many.
    pub count: u64,
}

impl ParseFallbacks {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_parse_fallbacks_total", "reason" => self.reason).increment(self.count);
    }
}

/// Events after multiline joining, and joins.
pub struct Parsed {
    /// Events produced.
    pub events: u64,
    /// Continuation lines joined into an event.
    pub multiline_joins: u64,
}

impl Parsed {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_events_total").increment(self.events);
        counter!("medic_multiline_joins_total").increment(self.multiline_joins);
    }
}

/// Hits of one rule.
pub struct RuleHits<'a> {
    /// Rule id (bounded by the rule files).
    pub rule: &'a str,
    /// The rule's severity.
    pub severity: &'static str,
    /// How many.
    pub count: u64,
}

impl RuleHits<'_> {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_rule_hits_total", "rule" => self.rule.to_string(), "severity" => self.severity)
            .increment(self.count);
    }
}

/// The template miner's state.
pub struct Templates {
    /// Templates alive now (summed over workers by the caller).
    pub live: u64,
    /// Templates created since the last report.
    pub created: u64,
    /// Templates evicted by the cap since the last report.
    pub evicted: u64,
}

impl Templates {
    /// Record it.
    pub fn emit(&self) {
        gauge!("medic_templates").set(self.live as f64);
        counter!("medic_templates_created_total").increment(self.created);
        counter!("medic_templates_evicted_total").increment(self.evicted);
    }
}

/// An incident notification went out.
pub struct IncidentNotified {
    /// `open`, `resolved`, ...
    pub state: &'static str,
    /// Severity of the incident.
    pub severity: &'static str,
}

impl IncidentNotified {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_incident_notifications_total", "state" => self.state, "severity" => self.severity)
            .increment(1);
    }
}

/// Incident keys evicted by the state cap, and notifications suppressed by inhibition.
pub struct WindowPressure {
    /// Keys evicted (least recently updated first).
    pub evicted: u64,
    /// Notifications an inhibiting incident suppressed.
    pub inhibited: u64,
}

impl WindowPressure {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_window_evictions_total").increment(self.evicted);
        counter!("medic_incident_notifications_inhibited_total").increment(self.inhibited);
    }
}

/// Records that were late or dropped, by reason (`late`: processed at the watermark,
/// never dropped).
pub struct RecordsDeferred {
    /// Why.
    pub reason: &'static str,
    /// How many.
    pub count: u64,
}

impl RecordsDeferred {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_window_records_total", "outcome" => self.reason).increment(self.count);
    }
}

/// The largest lag of the sources of one kind: wall clock minus the newest record's time.
pub struct SourceLag {
    /// Source kind.
    pub kind: &'static str,
    /// Seconds.
    pub seconds: f64,
    /// Sources of this kind with records.
    pub sources: usize,
}

impl SourceLag {
    /// Record it.
    pub fn emit(&self) {
        gauge!("medic_source_lag_seconds", "source_kind" => self.kind).set(self.seconds);
        gauge!("medic_sources", "source_kind" => self.kind).set(self.sources as f64);
    }
}

/// Seconds since read positions were last written successfully.
pub struct CheckpointAge {
    /// Seconds.
    pub seconds: f64,
    /// Whether the last attempt failed.
    pub failed: bool,
}

impl CheckpointAge {
    /// Record it.
    pub fn emit(&self) {
        gauge!("medic_checkpoint_age_seconds").set(self.seconds);
        if self.failed {
            counter!("medic_checkpoint_write_errors_total").increment(1);
        }
    }
}

/// Time one event spent in a stage (sampled).
pub struct StageLatency {
    /// `parse`, `detect_fingerprint`, `window_feed`.
    pub stage: &'static str,
    /// Seconds.
    pub seconds: f64,
}

impl StageLatency {
    /// Record it.
    pub fn emit(&self) {
        histogram!("medic_stage_duration_seconds", "stage" => self.stage).record(self.seconds);
    }
}

/// Rules were reloaded (or a reload failed).
pub struct RulesReloaded {
    /// Whether the new rules were taken.
    pub ok: bool,
}

impl RulesReloaded {
    /// Record it.
    pub fn emit(&self) {
        let outcome = if self.ok { "ok" } else { "error" };
        counter!("medic_rule_reloads_total", "outcome" => outcome).increment(1);
    }
}

/// One HTTP request to an LLM endpoint.
pub struct LlmRequest {
    /// `anthropic` or `openai`.
    pub provider: &'static str,
    /// `ok`, `rate_limited`, `server_error`, `client_error`, `timeout`, `transport`.
    pub outcome: &'static str,
}

impl LlmRequest {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_llm_requests_total", "provider" => self.provider, "outcome" => self.outcome)
            .increment(1);
    }
}

/// Tokens an LLM exchange used.
pub struct LlmTokens {
    /// Provider.
    pub provider: &'static str,
    /// Prompt tokens.
    pub input: u64,
    /// Answer tokens.
    pub output: u64,
}

impl LlmTokens {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_llm_tokens_total", "provider" => self.provider, "kind" => "input")
            .increment(self.input);
        counter!("medic_llm_tokens_total", "provider" => self.provider, "kind" => "output")
            .increment(self.output);
    }
}

/// An incident notification was classified.
pub struct Classified {
    /// `cache`, `llm` or `rules`.
    pub by: &'static str,
}

impl Classified {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_classifications_total", "by" => self.by).increment(1);
    }
}

/// The LLM was configured but the rule classifier answered.
pub struct ClassifierFallback {
    /// `budget`, `status`, `transport`, `invalid_answer`, `config`.
    pub reason: &'static str,
}

impl ClassifierFallback {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_classifier_fallbacks_total", "reason" => self.reason).increment(1);
        if self.reason == "budget" {
            counter!("medic_llm_budget_denials_total").increment(1);
        }
    }
}

/// A secret was redacted before leaving the host.
pub struct Redacted {
    /// The pattern kind (`email`, `jwt`, ...).
    pub kind: &'static str,
}

impl Redacted {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_redactions_total", "kind" => self.kind).increment(1);
    }
}

/// A ticket action was delivered, retried or given up.
pub struct TicketAction {
    /// `store`, `jira`, `github`, `webhook`.
    pub sink: &'static str,
    /// `create`, `comment`, `reopen`, `resolve`, `cooldown`, `skip`, `already_done`, or
    /// `error` when it failed.
    pub action: &'static str,
    /// `ok`, `retry` or `dead`.
    pub outcome: &'static str,
}

impl TicketAction {
    /// Record it.
    pub fn emit(&self) {
        counter!("medic_ticket_actions_total", "sink" => self.sink, "action" => self.action, "outcome" => self.outcome)
            .increment(1);
    }
}

/// Outbox rows of one sink (`classify` for notifications waiting for classification).
pub struct OutboxDepth<'a> {
    /// Sink name.
    pub sink: &'a str,
    /// Waiting.
    pub pending: u64,
    /// Given up on, kept for inspection.
    pub dead: u64,
}

impl OutboxDepth<'_> {
    /// Record it.
    pub fn emit(&self) {
        gauge!("medic_outbox_depth", "sink" => self.sink.to_string(), "state" => "pending")
            .set(self.pending as f64);
        gauge!("medic_outbox_depth", "sink" => self.sink.to_string(), "state" => "dead")
            .set(self.dead as f64);
    }
}

/// Help texts and units for every metric above, registered once with the recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "medic_lines_read_total",
        Unit::Count,
        "Lines read, by source kind."
    );
    describe_counter!(
        "medic_bytes_read_total",
        Unit::Bytes,
        "Bytes read, by source kind."
    );
    describe_counter!(
        "medic_parse_fallbacks_total",
        Unit::Count,
        "Lines that left the fast parse path, by reason."
    );
    describe_counter!(
        "medic_events_total",
        Unit::Count,
        "Events after multiline joining."
    );
    describe_counter!(
        "medic_multiline_joins_total",
        Unit::Count,
        "Continuation lines joined into multiline events."
    );
    describe_counter!(
        "medic_rule_hits_total",
        Unit::Count,
        "Rule hits, by rule and severity."
    );
    describe_gauge!(
        "medic_templates",
        Unit::Count,
        "Templates alive in the miner."
    );
    describe_counter!(
        "medic_templates_created_total",
        Unit::Count,
        "Templates created."
    );
    describe_counter!(
        "medic_templates_evicted_total",
        Unit::Count,
        "Templates evicted by the template cap."
    );
    describe_counter!(
        "medic_incident_notifications_total",
        Unit::Count,
        "Incident notifications, by state and severity."
    );
    describe_counter!(
        "medic_window_records_total",
        Unit::Count,
        "Window records by outcome (late: processed at the watermark, never dropped)."
    );
    describe_gauge!(
        "medic_source_lag_seconds",
        Unit::Seconds,
        "Largest lag of the sources of a kind: wall clock minus the newest record's time."
    );
    describe_gauge!(
        "medic_sources",
        Unit::Count,
        "Sources with records, by kind."
    );
    describe_gauge!(
        "medic_checkpoint_age_seconds",
        Unit::Seconds,
        "Seconds since read positions were last written."
    );
    describe_counter!(
        "medic_checkpoint_write_errors_total",
        Unit::Count,
        "Failed writes of the checkpoint file."
    );
    describe_histogram!(
        "medic_stage_duration_seconds",
        Unit::Seconds,
        "Time one event spends in a stage (one line in 64 is measured)."
    );
    describe_counter!(
        "medic_rule_reloads_total",
        Unit::Count,
        "Rule reloads, by outcome."
    );
    describe_counter!(
        "medic_llm_requests_total",
        Unit::Count,
        "HTTP requests to the LLM endpoint, by provider and outcome."
    );
    describe_counter!(
        "medic_llm_tokens_total",
        Unit::Count,
        "LLM tokens used, by provider and kind (input, output)."
    );
    describe_counter!(
        "medic_classifications_total",
        Unit::Count,
        "Incident notifications classified, by where the answer came from (cache, llm, rules)."
    );
    describe_counter!(
        "medic_classifier_fallbacks_total",
        Unit::Count,
        "Classifications the rule classifier made because the LLM could not, by reason."
    );
    describe_counter!(
        "medic_llm_budget_denials_total",
        Unit::Count,
        "LLM calls refused by the budget."
    );
    describe_counter!(
        "medic_redactions_total",
        Unit::Count,
        "Secrets replaced before text left the host, by kind."
    );
    describe_counter!(
        "medic_ticket_actions_total",
        Unit::Count,
        "Ticket actions, by sink, action and outcome (ok, retry, dead)."
    );
    describe_gauge!(
        "medic_outbox_depth",
        Unit::Count,
        "Outbox rows by sink and state (pending, dead); sink=classify counts notifications waiting for classification."
    );
    describe_counter!(
        "medic_window_evictions_total",
        Unit::Count,
        "Incident keys evicted by the window's state cap (max_incidents), least recently updated first."
    );
    describe_counter!(
        "medic_incident_notifications_inhibited_total",
        Unit::Count,
        "Incident notifications suppressed by an inhibiting incident on the same service."
    );
    // Series with a known, fixed label set start at 0, so dashboards and alerts see 0
    // rather than no data before the first occurrence.
    for reason in ["config", "budget", "status", "transport", "invalid_answer"] {
        counter!("medic_classifier_fallbacks_total", "reason" => reason).increment(0);
    }
    counter!("medic_llm_budget_denials_total").increment(0);
    counter!("medic_window_evictions_total").increment(0);
    counter!("medic_incident_notifications_inhibited_total").increment(0);
}
