//! The incident state machine of one shard, driven by explicit event times: no clocks, no
//! timely. Records must arrive in event-time order; `advance(now)` fires every timer due
//! at or before `now`, in order.
//!
//! Per key: **pending** (counting toward a trigger) → **open** (first notification after
//! `group_wait`, updates at most every `group_interval`, repeats after `repeat_interval`
//! of silence while open) → **resolved** after `resolve_after` without records →
//! **reopened** (a regression, same id) on any later record.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64;

use super::config::WindowConfig;
use crate::event::{
    Fingerprint, Hit, Incident, IncidentKey, IncidentState, Sample, Severity, Trigger,
};

/// A hash map keyed by services and fingerprints. The fingerprint is already a 64-bit hash
/// and service names come from the operator's containers and files, not from log text, so
/// FxHash does; SipHash cost more than the rest of a lookup.
pub(super) type KeyMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Open,
    Resolved,
}

#[derive(Debug)]
struct Entry {
    generation: u32,
    key: IncidentKey,
    id: String,
    /// The names are the hits' own, shared; they become strings once per notification.
    template: Arc<str>,
    rules: Vec<Arc<str>>,
    severity: Severity,
    inhibits: bool,
    labels: Vec<(Arc<str>, Arc<str>)>,
    phase: Phase,
    trigger: Trigger,
    regression: bool,
    /// The next notification's state (Open or Reopened until the first one goes out).
    next_state: IncidentState,
    first_seen: u64,
    last_seen: u64,
    count: u64,
    since_emit: u64,
    late: u64,
    /// The most recent record times, as many as the threshold count needs.
    recent: VecDeque<u64>,
    /// A rule's own trigger, overriding the severity's.
    threshold: Option<crate::event::CountWithin>,
    spike_start: u64,
    spike_count: u32,
    baseline: f64,
    history: u32,
    last_emit: Option<u64>,
    notify_due: Option<u64>,
    sources: Vec<Arc<str>>,
    first_samples: Vec<Sample>,
    last_samples: VecDeque<Sample>,
    related: Vec<String>,
    inhibited_by: Option<String>,
    /// The due time of this entry's one live heap item, if any. Other heap items for the
    /// entry are stale and skipped, so the heap holds about one item per open incident
    /// however many records arrive.
    scheduled: Option<u64>,
}

/// Counters of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Records taken.
    pub records: u64,
    /// Records that arrived behind the watermark.
    pub late: u64,
    /// Keys evicted by the cap.
    pub evicted: u64,
    /// Notifications suppressed by inhibition.
    pub inhibited: u64,
    /// Notifications emitted.
    pub emitted: u64,
}

/// Incident state of one shard.
#[derive(Debug)]
pub struct Table {
    cfg: WindowConfig,
    entries: Vec<Option<Entry>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    index: KeyMap<IncidentKey, u32>,
    timers: BinaryHeap<Reverse<(u64, u32, u32)>>,
    /// service -> (inhibited until, inhibiting key's service+fingerprint label)
    inhibit: KeyMap<Arc<str>, (u64, IncidentKey)>,
    max_time: u64,
    stats: TableStats,
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

impl Table {
    /// An empty table.
    pub fn new(cfg: WindowConfig) -> Table {
        Table {
            cfg,
            entries: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            index: KeyMap::default(),
            timers: BinaryHeap::new(),
            inhibit: KeyMap::default(),
            max_time: 0,
            stats: TableStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    /// Timer items in the heap (live and stale), for bounding tests.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// An inhibiting incident on `key.service` fired at `time`: suppress the service's other
    /// notifications until `time + inhibit_for`.
    pub fn inhibit(&mut self, key: &IncidentKey, time: u64) {
        let until = time + ms(self.cfg.inhibit_for);
        let e = self
            .inhibit
            .entry(key.service.clone())
            .or_insert((until, key.clone()));
        if e.0 < until {
            *e = (until, key.clone());
        }
    }

    /// Take one record at its event time. `late` marks a record that arrived behind the
    /// watermark and is processed at it.
    pub fn record(&mut self, hit: Hit, new_fingerprint: bool, late: bool) {
        self.stats.records += 1;
        self.max_time = self.max_time.max(hit.time_ms);
        if late {
            self.stats.late += 1;
        }
        let t = hit.time_ms;
        let slot = match self.index.get(&hit.key) {
            Some(&s) => s,
            None => self.insert(&hit),
        };
        let cfg = &self.cfg;
        let Some(e) = self.entries[slot as usize].as_mut() else {
            return;
        };
        e.last_seen = e.last_seen.max(t);
        e.count += 1;
        if late {
            e.late += 1;
        }
        if hit.severity > e.severity {
            e.severity = hit.severity;
        }
        e.inhibits |= hit.inhibits;
        if hit.threshold.is_some() {
            e.threshold = hit.threshold;
        }
        for r in hit.rules {
            if e.rules.len() < 16 && !e.rules.contains(&r) {
                e.rules.push(r);
            }
        }
        for l in hit.labels {
            if e.labels.len() < 16 && !e.labels.contains(&l) {
                e.labels.push(l);
            }
        }
        if e.sources.len() < cfg.max_sources && !e.sources.contains(&hit.source) {
            e.sources.push(hit.source);
        }
        let half = cfg.max_samples.div_ceil(2);
        let sample = Sample {
            time_ms: t,
            text: hit.text,
        };
        if e.first_samples.len() < half {
            e.first_samples.push(sample);
        } else if cfg.max_samples > half {
            if e.last_samples.len() == cfg.max_samples - half {
                e.last_samples.pop_front();
            }
            e.last_samples.push_back(sample);
        }
        match e.phase {
            Phase::Pending => {
                let (count, within) = match e.threshold {
                    Some(c) => (c.count, c.within_ms),
                    None => {
                        let t = cfg.thresholds.for_severity(e.severity);
                        (t.count, ms(t.within))
                    }
                };
                let need = count.max(1) as usize;
                e.recent.push_back(t);
                while e.recent.len() > need {
                    e.recent.pop_front();
                }
                let spiked = update_spike(e, t, cfg);
                let trigger = if e.recent.len() >= need && t - e.recent[0] <= within {
                    Some(Trigger::Threshold)
                } else if new_fingerprint && cfg.new_fingerprint.enabled {
                    Some(Trigger::NewFingerprint)
                } else if spiked {
                    Some(Trigger::Spike)
                } else {
                    None
                };
                if let Some(trigger) = trigger {
                    e.phase = Phase::Open;
                    e.trigger = trigger;
                    e.next_state = IncidentState::Open;
                    // The records that led up to the trigger belong to the first window.
                    e.since_emit = e.count;
                    e.notify_due = Some(t + ms(cfg.group_wait));
                    e.recent = VecDeque::new();
                }
            }
            Phase::Open => {
                update_spike(e, t, cfg);
                e.since_emit += 1;
                if e.notify_due.is_none() {
                    let earliest = e.last_emit.map_or(t, |l| l + ms(cfg.group_interval));
                    e.notify_due = Some(earliest.max(t));
                }
            }
            Phase::Resolved => {
                e.phase = Phase::Open;
                e.regression = true;
                e.next_state = IncidentState::Reopened;
                e.since_emit = 1;
                e.notify_due = Some(t + ms(cfg.group_wait));
            }
        }
        schedule(&mut self.timers, e, slot, cfg);
    }

    /// Fire every timer due at or before `now`, appending notifications to `out`.
    pub fn advance(&mut self, now: u64, out: &mut Vec<Incident>) {
        // Disjoint borrows: the config is read while entries and timers change.
        let Table {
            cfg,
            entries,
            index,
            timers,
            inhibit,
            stats,
            ..
        } = self;
        let cfg = &*cfg;
        while let Some(&Reverse((due, slot, generation))) = timers.peek() {
            if due > now {
                break;
            }
            timers.pop();
            let Some(e) = entries[slot as usize].as_mut() else {
                continue;
            };
            // Only the entry's live item counts; others are stale.
            if e.generation != generation || e.scheduled != Some(due) {
                continue;
            }
            e.scheduled = None;
            match next_timer(e, cfg) {
                Some(next) if next <= due => {}
                // Nothing due yet (the due moved later since this was pushed): re-arm.
                _ => {
                    schedule(timers, e, slot, cfg);
                    continue;
                }
            }
            let mut related_to: Option<(u32, String)> = None;
            let notify = e.notify_due.is_some_and(|n| n <= due);
            let resolve = e.phase == Phase::Open && e.last_seen + ms(cfg.resolve_after) <= due;
            if notify && !resolve {
                let suppressed = match inhibit.get(&e.key.service) {
                    Some((until, by)) if !e.inhibits && due <= *until && by != &e.key => {
                        Some((*until, by.clone()))
                    }
                    _ => None,
                };
                if let Some((until, by)) = suppressed {
                    stats.inhibited += 1;
                    e.inhibited_by = Some(format!("{}/{}", by.service, by.fingerprint));
                    e.notify_due = Some(until + 1);
                    related_to = index.get(&by).map(|&s| (s, e.id.clone()));
                } else {
                    let state = e.next_state;
                    out.push(snapshot(e, state));
                    e.next_state = IncidentState::Updated;
                    e.since_emit = 0;
                    e.last_emit = Some(due);
                    e.notify_due = None;
                    stats.emitted += 1;
                }
            } else if resolve {
                out.push(snapshot(e, IncidentState::Resolved));
                e.phase = Phase::Resolved;
                e.since_emit = 0;
                e.last_emit = Some(due);
                e.notify_due = None;
                stats.emitted += 1;
            } else {
                // repeat_interval: still open, nothing new since the last notification.
                out.push(snapshot(e, IncidentState::Updated));
                e.last_emit = Some(due);
                stats.emitted += 1;
            }
            schedule(timers, e, slot, cfg);
            // The inhibitor lists what it suppressed, when it lives in this shard.
            if let Some((s, id)) = related_to
                && let Some(inh) = entries[s as usize].as_mut()
                && !inh.related.contains(&id)
                && inh.related.len() < 32
            {
                inh.related.push(id);
            }
        }
    }

    /// A template merge: every incident keyed by `from` continues under `to`, renamed, or
    /// folded into the incident already keyed by `to` on the same service. The one that
    /// notified first (or was seen first) keeps its id, so downstream sees one incident.
    pub fn alias(&mut self, from: Fingerprint, to: Fingerprint) {
        let keys: Vec<IncidentKey> = self
            .index
            .keys()
            .filter(|k| k.fingerprint == from)
            .cloned()
            .collect();
        for old_key in keys {
            let Some(slot) = self.index.remove(&old_key) else {
                continue;
            };
            let new_key = IncidentKey {
                service: old_key.service.clone(),
                fingerprint: to,
            };
            let Some(&other) = self.index.get(&new_key) else {
                if let Some(e) = self.entries[slot as usize].as_mut() {
                    e.key = new_key.clone();
                }
                self.index.insert(new_key, slot);
                continue;
            };
            let Some(a) = self.entries[slot as usize].take() else {
                continue;
            };
            self.free.push(slot);
            let Some(b) = self.entries[other as usize].as_mut() else {
                continue;
            };
            fold(a, b, &self.cfg);
            schedule(&mut self.timers, b, other, &self.cfg);
        }
    }

    /// The newest event time recorded.
    pub fn max_time(&self) -> u64 {
        self.max_time
    }

    /// End of input: time stops at the newest event, so timers due by then fire, and then
    /// every incident still open is emitted in its final state: the last event of each
    /// incident id carries its total count.
    pub fn finish(&mut self, out: &mut Vec<Incident>) {
        self.advance(self.max_time, out);
        let mut open: Vec<&mut Entry> = self
            .entries
            .iter_mut()
            .flatten()
            .filter(|e| e.phase == Phase::Open)
            .collect();
        open.sort_by(|a, b| (a.first_seen, &a.id).cmp(&(b.first_seen, &b.id)));
        for e in open {
            let state = if e.notify_due.is_some() {
                e.next_state
            } else {
                IncidentState::Updated
            };
            out.push(snapshot(e, state));
            e.next_state = IncidentState::Updated;
            e.since_emit = 0;
            e.notify_due = None;
            self.stats.emitted += 1;
        }
        self.timers.clear();
    }

    fn insert(&mut self, hit: &Hit) -> u32 {
        if self.index.len() >= self.cfg.max_incidents.max(1) {
            self.evict();
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.entries.push(None);
                (self.entries.len() - 1) as u32
            }
        };
        // Per-slot counter: a stale timer item of the slot's previous occupant never
        // matches the new one.
        self.generations.resize(self.entries.len(), 0);
        self.generations[slot as usize] = self.generations[slot as usize].wrapping_add(1);
        let generation = self.generations[slot as usize];
        let t = hit.time_ms;
        let id = incident_id(&hit.key, t);
        self.entries[slot as usize] = Some(Entry {
            generation,
            key: hit.key.clone(),
            id,
            template: Arc::clone(&hit.template),
            rules: Vec::new(),
            severity: hit.severity,
            inhibits: false,
            labels: Vec::new(),
            phase: Phase::Pending,
            trigger: Trigger::Threshold,
            regression: false,
            next_state: IncidentState::Open,
            first_seen: t,
            last_seen: t,
            count: 0,
            since_emit: 0,
            late: 0,
            recent: VecDeque::new(),
            threshold: hit.threshold,
            spike_start: t,
            spike_count: 0,
            baseline: 0.0,
            history: 0,
            last_emit: None,
            notify_due: None,
            sources: Vec::new(),
            first_samples: Vec::new(),
            last_samples: VecDeque::new(),
            related: Vec::new(),
            inhibited_by: None,
            scheduled: None,
        });
        self.index.insert(hit.key.clone(), slot);
        slot
    }

    /// Evict the least recently seen tenth of the keys, pending ones first.
    fn evict(&mut self) {
        let mut victims: Vec<(bool, u64, u32)> = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.as_ref()
                    .map(|e| (e.phase == Phase::Open, e.last_seen, i as u32))
            })
            .collect();
        victims.sort_unstable();
        let n = (self.cfg.max_incidents / 10).max(1).min(victims.len());
        for &(_, _, slot) in &victims[..n] {
            if let Some(e) = self.entries[slot as usize].take() {
                self.index.remove(&e.key);
                self.free.push(slot);
                self.stats.evicted += 1;
            }
        }
    }
}

/// Make sure the entry's next timer is in the heap: push only when none is live or the
/// next due moved earlier (a later due is picked up when the earlier item pops).
fn schedule(
    timers: &mut BinaryHeap<Reverse<(u64, u32, u32)>>,
    e: &mut Entry,
    slot: u32,
    cfg: &WindowConfig,
) {
    if let Some(due) = next_timer(e, cfg)
        && e.scheduled.is_none_or(|s| due < s)
    {
        timers.push(Reverse((due, slot, e.generation)));
        e.scheduled = Some(due);
    }
}

/// Fold incident `a` into `b` (same service, merged templates).
fn fold(a: Entry, b: &mut Entry, cfg: &WindowConfig) {
    let a_first = (a.last_emit.is_none(), a.first_seen) < (b.last_emit.is_none(), b.first_seen);
    if a_first {
        b.id = a.id;
        b.first_seen = a.first_seen;
        b.trigger = a.trigger;
        b.next_state = a.next_state;
        b.last_emit = a.last_emit;
        b.regression |= a.regression;
    }
    b.first_seen = b.first_seen.min(a.first_seen);
    b.last_seen = b.last_seen.max(a.last_seen);
    b.count += a.count;
    b.since_emit += a.since_emit;
    b.late += a.late;
    b.severity = b.severity.max(a.severity);
    b.inhibits |= a.inhibits;
    if a.phase == Phase::Open && b.phase != Phase::Open {
        b.phase = Phase::Open;
    }
    b.notify_due = match (a.notify_due, b.notify_due) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    if b.phase == Phase::Open && b.notify_due.is_none() && b.since_emit > 0 {
        b.notify_due = Some(
            b.last_emit
                .map_or(b.last_seen, |l| l + ms(cfg.group_interval)),
        );
    }
    for r in a.rules {
        if b.rules.len() < 16 && !b.rules.contains(&r) {
            b.rules.push(r);
        }
    }
    for s in a.sources {
        if b.sources.len() < cfg.max_sources && !b.sources.contains(&s) {
            b.sources.push(s);
        }
    }
    let half = cfg.max_samples.div_ceil(2);
    let mut firsts: Vec<Sample> = a
        .first_samples
        .into_iter()
        .chain(b.first_samples.drain(..))
        .collect();
    firsts.sort_by_key(|s| s.time_ms);
    firsts.truncate(half);
    b.first_samples = firsts;
    b.related.extend(a.related);
}

/// Roll the spike window to `t` and count the record; whether it is a spike now.
fn update_spike(e: &mut Entry, t: u64, cfg: &WindowConfig) -> bool {
    if !cfg.spike.enabled {
        return false;
    }
    let w = ms(cfg.spike.window).max(1);
    if t >= e.spike_start + w {
        // Close the current window, and decay through empty ones (bounded: after 64 empty
        // windows the baseline is effectively zero anyway).
        let windows = ((t - e.spike_start) / w).min(64);
        e.baseline = 0.7 * e.baseline + 0.3 * f64::from(e.spike_count);
        for _ in 1..windows {
            e.baseline *= 0.7;
        }
        e.history = e.history.saturating_add(windows as u32);
        e.spike_start += ((t - e.spike_start) / w) * w;
        e.spike_count = 0;
    }
    e.spike_count += 1;
    e.history >= cfg.spike.min_history
        && e.spike_count >= cfg.spike.min_count
        && f64::from(e.spike_count) >= cfg.spike.factor * e.baseline.max(1.0)
}

fn next_timer(e: &Entry, cfg: &WindowConfig) -> Option<u64> {
    if e.phase != Phase::Open {
        return None;
    }
    let resolve = e.last_seen + ms(cfg.resolve_after);
    let repeat = match (e.last_emit, e.notify_due) {
        (Some(l), None) => Some(l + ms(cfg.repeat_interval)),
        _ => None,
    };
    [e.notify_due, Some(resolve), repeat]
        .into_iter()
        .flatten()
        .min()
}

fn incident_id(key: &IncidentKey, first_seen: u64) -> String {
    let mut buf = Vec::with_capacity(key.service.len() + 24);
    buf.extend_from_slice(key.service.as_bytes());
    buf.push(0);
    buf.extend_from_slice(&key.fingerprint.0.to_le_bytes());
    buf.extend_from_slice(&first_seen.to_le_bytes());
    format!("{:016x}", xxh3_64(&buf))
}

fn strings(names: &[Arc<str>]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn snapshot(e: &Entry, state: IncidentState) -> Incident {
    Incident {
        id: e.id.clone(),
        key: e.key.clone(),
        template: e.template.to_string(),
        rules: strings(&e.rules),
        severity: e.severity,
        state,
        trigger: e.trigger,
        regression: e.regression,
        first_seen_ms: e.first_seen,
        last_seen_ms: e.last_seen,
        count: e.count,
        count_in_window: e.since_emit,
        sources: strings(&e.sources),
        samples: e
            .first_samples
            .iter()
            .chain(e.last_samples.iter())
            .cloned()
            .collect(),
        labels: e
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        related: e.related.clone(),
        inhibited_by: e.inhibited_by.clone(),
        late: e.late,
    }
}
