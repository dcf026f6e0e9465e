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

/// Records that were late or dropped, by reason (`late`: processed at the watermark,
/// never dropped; `evicted`: incident state evicted by the cap).
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
}
