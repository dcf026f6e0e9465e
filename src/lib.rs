//! medic: a log-pipeline sidecar for self-healing systems.
//!
//! medic reads log lines (containers, files, stdin, replayed corpora), parses them, detects
//! errors with rule files, fingerprints each line into a template so that one bug is one
//! fingerprint, and groups hits into incidents that are classified once and ticketed.
//!
//! # Layout
//!
//! Data flows one way; a stage imports [`event`], [`telemetry`] and [`simd`], never another
//! stage.
//! Only [`pipeline`] knows every stage.
//!
//! - [`event`]: the types that cross stage boundaries, in pipeline order.
//! - [`source`]: where lines come from (files, stdin, replay), split into bounded lines.
//! - [`parse`]: bytes to events: Docker json-file and JSON with simd-json, plain text with
//!   log formats, multiline joining, counted fallbacks for bad input.
//! - [`detect`]: YAML rule files compiled into one Aho-Corasick automaton, with regex
//!   confirmation only where literals hit; `check-rules`.
//! - [`fingerprint`]: masking, online template mining, stack-trace signatures; stable
//!   versioned 64-bit fingerprints.
//! - [`telemetry`]: process measurements and the internal metric events (one place for
//!   every metric name).
//! - [`window`]: incidents on timely dataflow: triggers, Alertmanager timers, bounded state.
//! - [`escalate`]: once per incident: redaction, the rule classifier, LLM clients
//!   (Anthropic, OpenAI-compatible), the classification cache and the budget.
//! - [`sink`]: tickets: the embedded store, Jira, GitHub Issues, a signed webhook, upsert by
//!   fingerprint, reopen on regression, and the durable outbox.
//! - [`qa`]: scheduled browser flows in headless Chromium; failures become incidents.
//! - [`config`]: the configuration file that assembles every stage's settings.
//! - [`pipeline`]: the wiring.
//! - [`simd`]: byte-set bitmasks 32 bytes at a time, for the stages' per-byte loops.
//! - [`bench`](mod@bench): the reproducible throughput benchmark behind `medic bench`.

pub mod api;
pub mod bench;
pub mod config;
pub mod detect;
pub mod escalate;
pub mod event;
pub mod fingerprint;
pub mod parse;
pub mod pipeline;
pub mod qa;
pub mod simd;
pub mod sink;
pub mod source;
pub mod telemetry;
pub mod window;
