//! Window: hits to incidents, on timely dataflow. The only module that imports timely.
//!
//! Each worker feeds the hits of its share of the input. Hits are exchanged by fingerprint,
//! so each worker owns a shard of incident state ([`table::Table`]). Records carry their
//! event time; the input is stamped with a watermark that trails the newest event time by
//! `allowed_lateness`, and the incident operator processes records in event-time order
//! once the frontier has passed them, then fires the timers due before the frontier.
//! A record behind the watermark cannot enter the dataflow at its own time (timely would
//! panic), so it is counted as late and processed at the watermark: never dropped.
//!
//! Inhibiting hits are also broadcast to every worker, so a suppression reaches the shards
//! that own the other fingerprints of the same service.

pub mod config;
pub mod table;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use timely::worker::Worker;

pub use config::WindowConfig;
pub use table::{Table, TableStats};

use crate::event::{Fingerprint, Hit, Incident, IncidentKey};

/// Window stage errors.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// The dataflow could not start.
    #[error("cannot start the windowing dataflow: {0}")]
    Start(String),
    /// A worker's feed failed (an input could not be read).
    #[error("{0}")]
    Feed(String),
    /// A worker thread panicked.
    #[error("a windowing worker failed: {0}")]
    Worker(String),
}

/// Counters of the whole dataflow, summed over workers.
#[derive(Debug, Default)]
pub struct WindowStats {
    /// Hits fed in.
    pub records: AtomicU64,
    /// Hits that arrived behind the watermark.
    pub late: AtomicU64,
    /// Incident keys evicted by the cap.
    pub evicted: AtomicU64,
    /// Notifications suppressed by inhibition.
    pub inhibited: AtomicU64,
    /// Notifications emitted.
    pub emitted: AtomicU64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Rec {
    time: u64,
    route: u64,
    seq: u64,
    body: Body,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Body {
    Hit {
        hit: Hit,
        new_fingerprint: bool,
        late: bool,
    },
    /// A template merge: incidents keyed by `from` continue under `to`.
    Alias { from: Fingerprint, to: Fingerprint },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Notice {
    key: IncidentKey,
    time: u64,
}

/// What a worker's feed pushes hits into.
pub struct Feeder<'w> {
    stats: Arc<WindowStats>,
    worker: &'w mut Worker,
    hits: InputHandle<u64, CapacityContainerBuilder<Vec<Rec>>>,
    notices: InputHandle<u64, CapacityContainerBuilder<Vec<Notice>>>,
    lateness: u64,
    warmup: u64,
    max_seen: u64,
    sent: u64,
    late: u64,
    source_start: table::KeyMap<Arc<str>, u64>,
    probe: ProbeHandle<u64>,
    max_lead: Option<u64>,
}

impl Feeder<'_> {
    /// This worker's index and the number of workers, to pick its share of the input.
    pub fn shard(&self) -> (usize, usize) {
        (self.worker.index(), self.worker.peers())
    }

    /// Feed one hit.
    pub fn push(&mut self, mut hit: Hit) {
        let t = hit.time_ms;
        // Look up before inserting: the source is almost always known, and `entry` would
        // clone its name for every hit.
        let first = match self.source_start.get(&hit.source) {
            Some(&first) => first,
            None => *self.source_start.entry(hit.source.clone()).or_insert(t),
        };
        let new_fingerprint = hit.new_template && t.saturating_sub(first) >= self.warmup;
        let watermark = *self.hits.time();
        let late = t < watermark;
        if late {
            self.late += 1;
            hit.time_ms = watermark;
        }
        if hit.inhibits {
            self.notices.send(Notice {
                key: hit.key.clone(),
                time: hit.time_ms,
            });
        }
        self.sent += 1;
        self.hits.send(Rec {
            time: hit.time_ms,
            route: hit.route,
            seq: self.sent,
            body: Body::Hit {
                hit,
                new_fingerprint,
                late,
            },
        });
        self.max_seen = self.max_seen.max(t);
        // Advance in batches: every advance is a progress update for all workers.
        if self.sent.is_multiple_of(256) {
            self.advance(self.max_seen.saturating_sub(self.lateness));
            self.worker.step();
            if let Some(lead) = self.max_lead {
                // Every worker buffers what is ahead of the slowest one; wait for it rather
                // than let that buffer grow with the input.
                let floor = self
                    .max_seen
                    .saturating_sub(self.lateness.saturating_add(lead));
                while self.probe.less_than(&floor) {
                    self.worker
                        .step_or_park(Some(std::time::Duration::from_millis(1)));
                }
            }
        }
    }

    /// Keep this worker's event time at most `lead_ms` (plus the allowed lateness) ahead
    /// of the slowest worker's, so the window stage's buffers stay bounded. For replays,
    /// where every worker reads the same span of time; a live worker must never wait for
    /// another's source.
    pub fn bound_lead(&mut self, lead_ms: u64) {
        self.max_lead = Some(lead_ms);
    }

    /// A template merge seen at event time `time_ms`: incidents keyed by `from` continue
    /// under `to`. `route` is the merged template's route (the same for both).
    pub fn alias(&mut self, from: Fingerprint, to: Fingerprint, route: u64, time_ms: u64) {
        let time = time_ms.max(*self.hits.time());
        self.sent += 1;
        self.hits.send(Rec {
            time,
            route,
            seq: self.sent,
            body: Body::Alias { from, to },
        });
    }

    /// Hits fed behind the watermark so far (processed at the watermark, never dropped).
    pub fn late(&self) -> u64 {
        self.late
    }

    /// The dataflow's counters, summed over every worker, as of each worker's latest
    /// activation.
    pub fn stats(&self) -> &WindowStats {
        &self.stats
    }

    /// Let the dataflow make progress (live feeds call this on their timer, so timers fire
    /// and notifications go out while no records arrive).
    pub fn step(&mut self) {
        self.worker.step();
    }

    /// Tell the dataflow that event time has reached `now_ms` on this worker even without
    /// records (live sources call this on a timer so incidents resolve during silence).
    pub fn advance(&mut self, watermark: u64) {
        if watermark > *self.hits.time() {
            self.hits.advance_to(watermark);
            self.notices.advance_to(watermark);
        }
    }
}

/// Run the window stage: `feed` is called once on every worker thread with that worker's
/// [`Feeder`]; `sink` receives every incident notification, on whichever worker owns it.
/// Returns when every feed has returned and every incident is flushed.
pub fn run<F, S>(cfg: &WindowConfig, feed: F, sink: S) -> Result<Arc<WindowStats>, WindowError>
where
    F: Fn(&mut Feeder<'_>) -> Result<(), String> + Send + Sync + 'static,
    S: Fn(Incident) + Send + Sync + 'static,
{
    let stats = Arc::new(WindowStats::default());
    let workers = cfg.workers.max(1);
    let cfg = cfg.clone();
    let sink = Arc::new(sink);
    let shared = Arc::clone(&stats);
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let mut hits = InputHandle::<u64, CapacityContainerBuilder<Vec<Rec>>>::new();
        let mut notices = InputHandle::<u64, CapacityContainerBuilder<Vec<Notice>>>::new();
        let probe = ProbeHandle::new();
        let sink = Arc::clone(&sink);
        let op_cfg = cfg.clone();
        let op_stats = Arc::clone(&shared);
        worker.dataflow::<u64, _, _>(|scope| {
            let hit_stream = hits.to_stream(scope);
            let notice_stream = notices.to_stream(scope).broadcast();
            hit_stream
                .binary_frontier(
                    notice_stream,
                    Exchange::new(|r: &Rec| r.route),
                    Pipeline,
                    "Incidents",
                    move |cap, _info| {
                        let mut table = Table::new(op_cfg);
                        let mut buffer: VecDeque<Rec> = VecDeque::new();
                        let mut inbox: Vec<Notice> = Vec::new();
                        let mut out: Vec<Incident> = Vec::new();
                        let mut cap = Some(cap);
                        let stats = op_stats;
                        // What this operator has added to the shared counters so far:
                        // they move live, so a running sidecar can export them.
                        let mut published = table::TableStats::default();
                        move |(in1, f1), (in2, f2), output| {
                            in1.for_each_stamp(|_t, data| {
                                for d in data {
                                    buffer.extend(d.drain(..));
                                }
                            });
                            in2.for_each_stamp(|_t, data| {
                                for d in data {
                                    inbox.append(d);
                                }
                            });
                            let frontier = [
                                f1.frontier().first().copied(),
                                f2.frontier().first().copied(),
                            ]
                            .into_iter()
                            .flatten()
                            .min();
                            // Everything before the frontier is final: process it in
                            // event-time order (notices first at equal times).
                            let upto = frontier.unwrap_or(u64::MAX);
                            inbox.sort_by_key(|n| n.time);
                            // Records mostly arrive in order: check before sorting, since
                            // sorting a ring buffer first moves it into one piece. Stable
                            // on purpose: the buffer is a sorted run plus what just
                            // arrived, which a stable sort merges in linear time. The ready
                            // records then leave from the front, where a Vec would move
                            // everything behind them up.
                            if !buffer.iter().is_sorted_by_key(|r| (r.time, r.seq)) {
                                buffer.make_contiguous().sort_by_key(|r| (r.time, r.seq));
                            }
                            let ready_n = inbox.partition_point(|n| n.time < upto);
                            let ready_r = buffer.partition_point(|r| r.time < upto);
                            let mut notes = inbox.drain(..ready_n).peekable();
                            for r in buffer.drain(..ready_r) {
                                while let Some(n) = notes.next_if(|n| n.time <= r.time) {
                                    table.inhibit(&n.key, n.time);
                                }
                                table.advance(r.time.saturating_sub(1), &mut out);
                                match r.body {
                                    Body::Hit {
                                        hit,
                                        new_fingerprint,
                                        late,
                                    } => table.record(hit, new_fingerprint, late),
                                    Body::Alias { from, to } => table.alias(from, to),
                                }
                            }
                            for n in notes {
                                table.inhibit(&n.key, n.time);
                            }
                            match frontier {
                                // Nothing before time 0 can be final.
                                Some(0) => {}
                                Some(f) => table.advance(f - 1, &mut out),
                                None => table.finish(&mut out),
                            }
                            let s = table.stats();
                            if *s != published {
                                let add = |a: &AtomicU64, now: u64, was: u64| {
                                    a.fetch_add(now - was, Ordering::Relaxed);
                                };
                                add(&stats.records, s.records, published.records);
                                add(&stats.late, s.late, published.late);
                                add(&stats.evicted, s.evicted, published.evicted);
                                add(&stats.inhibited, s.inhibited, published.inhibited);
                                add(&stats.emitted, s.emitted, published.emitted);
                                published = s.clone();
                            }
                            if let Some(c) = cap.as_mut() {
                                if !out.is_empty() {
                                    output.session(&*c).give_iterator(out.drain(..));
                                }
                                match frontier {
                                    Some(f) if f > *c.time() => c.downgrade(&f),
                                    Some(_) => {}
                                    None => cap = None,
                                }
                            }
                        }
                    },
                )
                .container::<Vec<Incident>>()
                .inspect(move |inc: &Incident| sink(inc.clone()))
                .probe_with(&probe);
        });
        let mut feeder = Feeder {
            stats: Arc::clone(&shared),
            worker,
            hits,
            notices,
            lateness: cfg.allowed_lateness.as_millis() as u64,
            warmup: cfg.new_fingerprint.warmup.as_millis() as u64,
            max_seen: 0,
            sent: 0,
            late: 0,
            source_start: table::KeyMap::default(),
            probe: probe.clone(),
            max_lead: None,
        };
        let result = feed(&mut feeder);
        let Feeder {
            worker,
            hits,
            notices,
            ..
        } = feeder;
        // Closing the inputs lets the frontier run out: every timer fires, every open
        // incident is flushed.
        drop(hits);
        drop(notices);
        while !probe.done() {
            worker.step();
        }
        result
    })
    .map_err(WindowError::Start)?;
    for r in guards.join() {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(WindowError::Feed(e)),
            Err(e) => return Err(WindowError::Worker(e)),
        }
    }
    Ok(stats)
}
