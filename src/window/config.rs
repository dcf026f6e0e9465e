//! Window settings: triggers, Alertmanager-style timers and state bounds. Durations are
//! written as `30s`, `5m`, `1h` or `250ms`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::duration;

use crate::event::Severity;

/// Incident windowing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Timely worker threads; hits are sharded across them by fingerprint.
    pub workers: usize,
    /// How far behind the newest event time a record may arrive and still be on time.
    /// Later records are counted as late and processed at the watermark.
    #[serde(with = "duration")]
    pub allowed_lateness: Duration,
    /// Wait this long after an incident opens before the first notification, to collect
    /// the initial burst (Alertmanager `group_wait`).
    #[serde(with = "duration")]
    pub group_wait: Duration,
    /// At most one update notification per incident per this interval (`group_interval`).
    #[serde(with = "duration")]
    pub group_interval: Duration,
    /// Re-send an open incident with no new records after this long (`repeat_interval`).
    #[serde(with = "duration")]
    pub repeat_interval: Duration,
    /// An incident resolves after this long without records.
    #[serde(with = "duration")]
    pub resolve_after: Duration,
    /// Count thresholds per severity.
    pub thresholds: Thresholds,
    /// Open an incident at once for a rule hit whose template was never seen before.
    pub new_fingerprint: NewFingerprint,
    /// Open an incident when a fingerprint's rate jumps above its baseline.
    pub spike: Spike,
    /// Incident keys tracked at most; the least recently updated are evicted beyond it.
    pub max_incidents: usize,
    /// Samples kept per incident: half the first ones, half the most recent.
    pub max_samples: usize,
    /// Sources listed per incident at most.
    pub max_sources: usize,
    /// How long an inhibiting incident suppresses others on the same service.
    #[serde(with = "duration")]
    pub inhibit_for: Duration,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            workers: 1,
            allowed_lateness: Duration::from_secs(5),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(5 * 60),
            repeat_interval: Duration::from_secs(4 * 3600),
            resolve_after: Duration::from_secs(15 * 60),
            thresholds: Thresholds::default(),
            new_fingerprint: NewFingerprint::default(),
            spike: Spike::default(),
            max_incidents: 20_000,
            max_samples: 6,
            max_sources: 16,
            inhibit_for: Duration::from_secs(5 * 60),
        }
    }
}

/// `count >= N within W` for one severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Records needed.
    pub count: u32,
    /// Within this window.
    #[serde(with = "duration")]
    pub within: Duration,
}

/// Thresholds per severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Critical rules.
    pub critical: Threshold,
    /// High rules.
    pub high: Threshold,
    /// Medium rules.
    pub medium: Threshold,
    /// Low rules.
    pub low: Threshold,
}

impl Default for Thresholds {
    fn default() -> Self {
        let t = |count, secs| Threshold {
            count,
            within: Duration::from_secs(secs),
        };
        Thresholds {
            critical: t(1, 60),
            high: t(1, 60),
            medium: t(5, 60),
            low: t(20, 300),
        }
    }
}

impl Thresholds {
    /// The threshold for a severity.
    pub fn for_severity(&self, s: Severity) -> Threshold {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
        }
    }
}

/// New-fingerprint trigger settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewFingerprint {
    /// Whether the trigger is on.
    pub enabled: bool,
    /// A source's templates are learnt for this long before new ones open incidents.
    #[serde(with = "duration")]
    pub warmup: Duration,
}

impl Default for NewFingerprint {
    fn default() -> Self {
        NewFingerprint {
            enabled: true,
            warmup: Duration::from_secs(10 * 60),
        }
    }
}

/// Rate-spike trigger settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spike {
    /// Whether the trigger is on.
    pub enabled: bool,
    /// The rate window.
    #[serde(with = "duration")]
    pub window: Duration,
    /// Fire at this multiple of the baseline (an exponential moving average of past
    /// windows).
    pub factor: f64,
    /// And at least this many records in the window.
    pub min_count: u32,
    /// Past windows needed before the baseline is trusted.
    pub min_history: u32,
}

impl Default for Spike {
    fn default() -> Self {
        Spike {
            enabled: true,
            window: Duration::from_secs(60),
            factor: 5.0,
            min_count: 10,
            min_history: 5,
        }
    }
}
