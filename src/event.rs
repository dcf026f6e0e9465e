//! The types that cross stage boundaries, in pipeline order.
//!
//! A source yields raw line bytes with [`Origin`] metadata; `parse` turns them into an
//! [`Event`] (one logical event, possibly joined from several lines); `detect` produces a
//! [`Detection`]; `fingerprint` produces a [`Fingerprint`]. Stages import these types and
//! `telemetry`, never each other.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Which output stream of a container or process a line came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Not known (plain files, stdin).
    #[default]
    Unknown,
}

impl Stream {
    /// The lowercase name used in JSON output and rule selectors.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Unknown => "unknown",
        }
    }
}

/// A normalised log level. Ordered from least to most severe.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// TRACE, VERBOSE.
    Trace,
    /// DEBUG.
    Debug,
    /// INFO, NOTICE.
    Info,
    /// WARN, WARNING.
    Warn,
    /// ERROR, ERR, SEVERE.
    Error,
    /// FATAL, CRITICAL, PANIC, EMERG, ALERT.
    Fatal,
}

impl Level {
    /// Recognise a level word, case-insensitively. Single letters (`E`, `W`) are accepted only
    /// when `allow_short` is set, because they are ambiguous inside free text.
    pub fn from_word(w: &[u8], allow_short: bool) -> Option<Level> {
        let mut buf = [0u8; 12];
        if w.is_empty() || w.len() > buf.len() {
            return None;
        }
        for (d, s) in buf.iter_mut().zip(w) {
            *d = s.to_ascii_lowercase();
        }
        Some(match &buf[..w.len()] {
            b"trace" | b"verbose" | b"finest" | b"finer" => Level::Trace,
            b"debug" | b"dbug" | b"fine" => Level::Debug,
            b"info" | b"information" | b"notice" => Level::Info,
            b"warn" | b"warning" => Level::Warn,
            b"error" | b"err" | b"severe" | b"failure" => Level::Error,
            b"fatal" | b"critical" | b"crit" | b"panic" | b"emerg" | b"emergency" | b"alert" => {
                Level::Fatal
            }
            b"t" if allow_short => Level::Trace,
            b"d" if allow_short => Level::Debug,
            b"i" if allow_short => Level::Info,
            b"w" if allow_short => Level::Warn,
            b"e" if allow_short => Level::Error,
            b"f" | b"c" if allow_short => Level::Fatal,
            _ => return None,
        })
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a line came from. Owned by the source; borrowed by every later stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Source kind: `docker`, `file`, `stdin`, `replay`, `qa`.
    pub kind: &'static str,
    /// File path or container name. Shared: every hit from the source carries it.
    pub name: Arc<str>,
    /// Container image, when known.
    pub image: Option<String>,
    /// The service name (from a `medic.service` label or configuration).
    pub service: Option<Arc<str>>,
    /// Container labels, sorted by key.
    pub labels: Vec<(String, String)>,
}

/// Why a line did not take the fast path. Each reason is counted, never silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Bytes were not valid UTF-8 and were replaced with U+FFFD.
    InvalidUtf8,
    /// The line was longer than the configured maximum and was cut.
    Truncated,
    /// The line looked like JSON but did not parse; it was treated as plain text.
    MalformedJson,
    /// NUL or other control bytes were replaced.
    ControlBytes,
    /// A multiline event hit its line or byte bound and was cut.
    MultilineBound,
}

impl Fallback {
    /// All reasons, for summaries.
    pub const ALL: [Fallback; 5] = [
        Fallback::InvalidUtf8,
        Fallback::Truncated,
        Fallback::MalformedJson,
        Fallback::ControlBytes,
        Fallback::MultilineBound,
    ];

    /// The snake_case name used in summaries and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::InvalidUtf8 => "invalid_utf8",
            Fallback::Truncated => "truncated",
            Fallback::MalformedJson => "malformed_json",
            Fallback::ControlBytes => "control_bytes",
            Fallback::MultilineBound => "multiline_bound",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A small set of [`Fallback`] reasons attached to one event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fallbacks(u8);

impl Fallbacks {
    /// Add a reason.
    pub fn insert(&mut self, f: Fallback) {
        self.0 |= f.bit();
    }
    /// Whether a reason is present.
    pub fn contains(self, f: Fallback) -> bool {
        self.0 & f.bit() != 0
    }
    /// Whether no reason is present.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Merge another set into this one.
    pub fn extend(&mut self, other: Fallbacks) {
        self.0 |= other.0;
    }
    /// Iterate over the reasons present.
    pub fn iter(self) -> impl Iterator<Item = Fallback> {
        Fallback::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

/// One logical log event after parsing and multiline joining.
///
/// All text lives in one buffer, `text`; the message, error and stack are ranges into it.
/// The parser clears and refills the buffer, so the steady state allocates nothing per line.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// Event time in nanoseconds since the Unix epoch, when the record carried one.
    pub time_ns: Option<i64>,
    /// Output stream.
    pub stream: Stream,
    /// Parsed level, if any.
    pub level: Option<Level>,
    /// Everything rules match against: the line as read (for JSON, the message, error and
    /// stack fields), with continuation lines of a multiline event joined by `\n`.
    pub text: String,
    /// Where the message is in `text`: the content after the header, or the JSON message.
    /// For a multiline event, the first line's message.
    pub message: Range<usize>,
    /// Where the structured error field is in `text` (empty when none).
    pub error: Range<usize>,
    /// Where the stack trace is in `text`: the JSON stack field, or the continuation lines
    /// (empty when none).
    pub stack: Range<usize>,
    /// How many physical lines were joined into this event.
    pub lines: u32,
    /// Fallback reasons met while producing it.
    pub fallbacks: Fallbacks,
}

impl Event {
    /// Reset to empty, keeping allocations.
    pub fn clear(&mut self) {
        self.time_ns = None;
        self.stream = Stream::Unknown;
        self.level = None;
        self.text.clear();
        self.message = 0..0;
        self.error = 0..0;
        self.stack = 0..0;
        self.lines = 0;
        self.fallbacks = Fallbacks::default();
    }

    /// The message text.
    pub fn message(&self) -> &str {
        self.text.get(self.message.clone()).unwrap_or("")
    }

    /// The structured error text, or "".
    pub fn error(&self) -> &str {
        self.text.get(self.error.clone()).unwrap_or("")
    }

    /// The stack trace text, or "".
    pub fn stack(&self) -> &str {
        self.text.get(self.stack.clone()).unwrap_or("")
    }
}

/// Rule severity, from least to most severe.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Degraded behaviour.
    Medium,
    /// A failure users see.
    High,
    /// Data loss, crash, outage.
    Critical,
}

impl Severity {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Index of a rule inside a compiled rule set.
pub type RuleIdx = u32;

/// What `detect` found in one event: the rules that matched, most severe first.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    /// Matched rules, most severe first (reused buffer).
    pub rules: Vec<RuleIdx>,
    /// The highest severity among them.
    pub severity: Option<Severity>,
}

impl Detection {
    /// Whether any rule matched.
    pub fn is_hit(&self) -> bool {
        !self.rules.is_empty()
    }
}

/// A template fingerprint: a stable 64-bit hash of the template text, with the masking
/// version folded in so a change of masking rules gives new fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        u64::from_str_radix(&s, 16).map(Fingerprint).map_err(|_| {
            serde::de::Error::custom(format!("invalid fingerprint {s:?}: expected 16 hex digits"))
        })
    }
}

/// The key an incident is grouped by: the service (or container, or file) and the
/// fingerprint.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct IncidentKey {
    /// Service, container or file name.
    pub service: Arc<str>,
    /// The template fingerprint.
    pub fingerprint: Fingerprint,
}

/// One detected event on its way into windowing: what the window stage needs, owned.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    /// Event time in milliseconds since the epoch (the log's own time, or arrival time).
    pub time_ms: u64,
    /// The incident key.
    pub key: IncidentKey,
    /// Matched rule ids, most severe first.
    pub rules: Vec<Arc<str>>,
    /// Severity of the most severe rule.
    pub severity: Severity,
    /// Whether a matched rule inhibits other incidents on the same service.
    pub inhibits: bool,
    /// The template text.
    pub template: Arc<str>,
    /// The event text (all joined lines), kept as a sample.
    pub text: String,
    /// Where it came from (file path or container name).
    pub source: Arc<str>,
    /// Labels of the matched rules.
    pub labels: Vec<(Arc<str>, Arc<str>)>,
    /// The miner saw this template for the first time.
    pub new_template: bool,
    /// Shard key: the template's mining bucket, which stays the same when templates merge,
    /// so an incident and the merges that re-key it land on the same worker.
    pub route: u64,
    /// The matched rule's own trigger, overriding the severity's default.
    pub threshold: Option<CountWithin>,
}

/// Where an incident is in its lifecycle, as emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    /// First notification.
    Open,
    /// Still firing: a later notification.
    Updated,
    /// Quiet for `resolve_after`.
    Resolved,
    /// Fired again after it was resolved (a regression).
    Reopened,
}

impl IncidentState {
    /// The lowercase name used in JSON and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Updated => "updated",
            IncidentState::Resolved => "resolved",
            IncidentState::Reopened => "reopened",
        }
    }
}

/// What opened an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `count >= N within W`.
    Threshold,
    /// A template never seen before on this source, after the warm-up.
    NewFingerprint,
    /// The rate in the window reached k times the fingerprint's baseline.
    Spike,
}

/// A sample line of an incident, with its whole multiline body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Event time in milliseconds.
    pub time_ms: u64,
    /// The event text.
    pub text: String,
}

/// An incident notification: the unit everything downstream works on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Incident {
    /// Stable id: a hash of the key and the first-seen time.
    pub id: String,
    /// The grouping key.
    pub key: IncidentKey,
    /// The template.
    pub template: String,
    /// Rule ids that matched, in first-seen order.
    pub rules: Vec<String>,
    /// Highest severity seen.
    pub severity: Severity,
    /// Lifecycle state of this notification.
    pub state: IncidentState,
    /// What opened it.
    pub trigger: Trigger,
    /// Set once it has reopened after a resolve.
    pub regression: bool,
    /// Event time of the first record, ms.
    pub first_seen_ms: u64,
    /// Event time of the latest record, ms.
    pub last_seen_ms: u64,
    /// Records since the key was first seen.
    pub count: u64,
    /// Records since the previous notification.
    pub count_in_window: u64,
    /// Sources involved (bounded).
    pub sources: Vec<String>,
    /// The first samples and the most recent ones.
    pub samples: Vec<Sample>,
    /// Labels of the matched rules.
    pub labels: Vec<(String, String)>,
    /// Ids of incidents this one suppressed (for inhibiting rules).
    pub related: Vec<String>,
    /// The inhibiting incident (`service/fingerprint`) that suppressed a notification of
    /// this one, if any.
    pub inhibited_by: Option<String>,
    /// Records that arrived behind the watermark and were counted at it.
    pub late: u64,
}

/// The kind of problem an incident is, as classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorType {
    /// A defect in the code.
    Bug,
    /// Slowness, timeouts, resource exhaustion under load.
    Performance,
    /// The platform: network, disks, nodes, containers, dependencies.
    Infrastructure,
    /// Authentication, authorisation, attacks, leaked or invalid credentials.
    Security,
    /// Wrong or missing settings.
    Configuration,
}

impl ErrorType {
    /// Every type, in the order ties are broken.
    pub const ALL: [ErrorType; 5] = [
        ErrorType::Security,
        ErrorType::Infrastructure,
        ErrorType::Performance,
        ErrorType::Configuration,
        ErrorType::Bug,
    ];

    /// The lowercase name, used in JSON, labels and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Bug => "bug",
            ErrorType::Performance => "performance",
            ErrorType::Infrastructure => "infrastructure",
            ErrorType::Security => "security",
            ErrorType::Configuration => "configuration",
        }
    }
}

/// What the classifier says about an incident: the content of a ticket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorClassification {
    /// Whether this is an error worth a ticket at all.
    pub is_error: bool,
    /// How bad it is.
    pub severity: Severity,
    /// What kind of problem it is.
    pub error_type: ErrorType,
    /// A one-line title.
    pub title: String,
    /// What happened, for the ticket body.
    pub description: String,
    /// The component (class, module, service) that fails.
    pub affected_component: String,
    /// What to try first.
    pub suggested_fix: String,
    /// 0.0 to 1.0.
    pub confidence: f32,
}

/// A classification and where it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Classified {
    /// The classification.
    pub classification: ErrorClassification,
    /// Which classifier produced it: `rules-1`, or `anthropic:<model>`.
    pub classifier: String,
    /// When the LLM was configured but the rules answered: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// A redacted incident notification with its classification: what the ticket sinks get.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Escalated {
    /// The incident, redacted.
    pub incident: Incident,
    /// Its classification.
    pub classified: Classified,
}

/// A per-rule trigger: `count` hits within `within_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CountWithin {
    /// Hits needed.
    pub count: u32,
    /// Within this many milliseconds.
    pub within_ms: u64,
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Format nanoseconds since the Unix epoch as RFC 3339 UTC with nanoseconds.
pub fn format_rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Durations as human strings: `250ms`, `30s`, `5m`, `4h`, `1d`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Parse `30s`, `5m`, ...
    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("invalid duration {s:?}: expected a number and a unit, like 30s or 5m")
        })?;
        let ms = match unit.trim() {
            "ms" => n,
            "s" | "" => n * 1000,
            "m" => n * 60_000,
            "h" => n * 3_600_000,
            "d" => n * 86_400_000,
            u => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {u:?} (use ms, s, m, h or d)"
                ));
            }
        };
        Ok(Duration::from_millis(ms))
    }

    /// A random point between half of `step` and all of it, so clients retrying together
    /// spread out (the clock's nanoseconds, hashed, are random enough for that).
    pub fn jitter(step: Duration) -> Duration {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        let frac = (xxhash_rust::xxh3::xxh3_64(&seed.to_le_bytes()) % 1000) as f64 / 1000.0;
        step.mul_f64(0.5 + frac / 2.0)
    }

    /// Format as the largest exact unit.
    pub fn format(d: &Duration) -> String {
        let ms = d.as_millis() as u64;
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
        ] {
            if ms >= size && ms.is_multiple_of(size) {
                return format!("{}{unit}", ms / size);
            }
        }
        format!("{ms}ms")
    }

    /// Serde serialize.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(d))
    }

    /// Serde deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Duration>` (null or absent is `None`).
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        /// Serde serialize.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_str(&super::format(d)),
                None => s.serialize_none(),
            }
        }

        /// Serde deserialize.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(s) => super::parse(&s).map(Some).map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }
    }
}
