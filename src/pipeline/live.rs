//! Live wiring for `medic run`: source messages → a parser per source → the shared
//! detector and template miner → the window dataflow → the incident sink.
//!
//! Each window worker owns a receiver; with several workers, [`route`] spreads sources over
//! them by key, so one source's lines stay in order on one worker. A record's position is
//! published to the checkpoint store only after the record went through every stage.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Core, hit_of};
use crate::detect::RuleSet;
use crate::event::{Event, Incident, Origin};
use crate::fingerprint::{Fingerprinter, MinerConfig};
use crate::parse::{Format, ParseConfig, Parser};
use crate::source::{
    CheckpointStore, Cursor, Framing, LagTable, SourceInfo, SourceLag, SourceMsg, Stop, now_ns,
};
use crate::telemetry::events;
use crate::window::{self, Feeder, WindowConfig, WindowError};

/// How often a live worker flushes due multiline events, advances event time, publishes
/// positions and checks for a rule reload when no records arrive.
const TICK: Duration = Duration::from_millis(100);

/// Messages taken from the channel before the worker looks at its timers again.
const BATCH: usize = 4096;

/// How long a worker sleeps when the channel runs dry before it drains it again. Waking
/// per record (a futex wake for the worker, another for the sender) cost more than the
/// record itself at 10k lines/s from the Docker API; a 5 ms linger turns that into a
/// batch per wake-up at the price of at most 5 ms of latency.
const LINGER: Duration = Duration::from_millis(5);

/// Wakes a worker parked on its channel.
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// One line in this many has its stage latencies measured.
const LATENCY_SAMPLE: u64 = 64;

/// Stage settings for live running.
#[derive(Debug, Clone, Default)]
pub struct LiveConfig {
    /// Parse settings (per-source labels override some).
    pub parse: ParseConfig,
    /// Miner settings.
    pub miner: MinerConfig,
    /// Window settings.
    pub window: WindowConfig,
}

/// Rules that can be replaced while running (SIGHUP, or a rule file changed).
#[derive(Debug, Clone)]
pub struct RulesHandle {
    current: Arc<Mutex<Arc<RuleSet>>>,
    generation: Arc<AtomicU64>,
}

impl RulesHandle {
    /// A handle holding `set`.
    pub fn new(set: RuleSet) -> RulesHandle {
        RulesHandle {
            current: Arc::new(Mutex::new(Arc::new(set))),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The rules in force and their generation.
    pub fn current(&self) -> (Arc<RuleSet>, u64) {
        let set = match self.current.lock() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        };
        (set, self.generation.load(Ordering::Acquire))
    }

    /// Replace the rules; workers switch at their next tick, keeping their templates.
    pub fn replace(&self, set: RuleSet) {
        match self.current.lock() {
            Ok(mut g) => *g = Arc::new(set),
            Err(p) => *p.into_inner() = Arc::new(set),
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Counters of a live run, summed over workers.
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Records handled.
    pub records: AtomicU64,
    /// Events after multiline joining.
    pub events: AtomicU64,
    /// Events that hit a rule.
    pub hits: AtomicU64,
    /// Rule reloads taken up (per worker).
    pub reloads: AtomicU64,
    /// Wall-clock milliseconds of the last record handled (0: none yet).
    pub last_record_ms: AtomicU64,
}

/// What the workers share with the rest of the process.
#[derive(Debug, Clone)]
pub struct LiveShared {
    /// Positions of handled records; the caller flushes it on its own timer.
    pub checkpoints: Arc<Mutex<CheckpointStore>>,
    /// Lag per source.
    pub lag: LagTable,
    /// Counters.
    pub stats: Arc<LiveStats>,
    /// Set at shutdown: workers drain what is queued, then finish.
    pub stop: Stop,
    /// Rule hits so far, by rule id (for the API).
    pub rule_hits: Arc<Mutex<std::collections::BTreeMap<String, u64>>>,
    /// The busiest templates of each worker, refreshed every few seconds (for the API).
    pub templates: Arc<Mutex<HashMap<usize, Vec<TemplateStat>>>>,
}

/// One busy template, as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TemplateStat {
    /// The template text.
    pub template: String,
    /// Its fingerprint.
    pub fingerprint: crate::event::Fingerprint,
    /// Lines so far.
    pub count: u64,
    /// Lines per second over the last period.
    pub rate_per_sec: f64,
    /// `rising`, `falling`, `steady` or `new`, against the period before.
    pub trend: &'static str,
}

/// Templates each worker publishes.
const TOP_TEMPLATES: usize = 50;

/// How often they are published, in ticks.
const TEMPLATES_EVERY_TICKS: u64 = 50;

/// The parse settings of one source: the configuration, with its `medic.log-format` and
/// `medic.multiline` labels on top.
pub fn source_parse_config(base: &ParseConfig, info: &SourceInfo) -> ParseConfig {
    let mut cfg = base.clone();
    if let Some(f) = &info.log_format {
        match f.as_str() {
            "auto" => cfg.format = Format::Auto,
            "json" => cfg.format = Format::Json,
            "plain" => cfg.format = Format::Plain,
            "docker-json" | "docker_json" => cfg.format = Format::DockerJson,
            header => cfg.log_format = Some(header.to_string()),
        }
    }
    if let Some(m) = info.multiline {
        cfg.multiline.enabled = m;
    }
    cfg
}

/// Spread source messages over worker channels by source key; `Forget` goes to all.
pub async fn route(mut rx: mpsc::Receiver<SourceMsg>, txs: Vec<mpsc::Sender<SourceMsg>>) {
    let n = txs.len().max(1);
    let shard = |key: &str| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % n as u64) as usize
    };
    while let Some(msg) = rx.recv().await {
        let to = match &msg {
            SourceMsg::Record(r) => shard(&r.source.key),
            SourceMsg::Closed(i) => shard(&i.key),
            SourceMsg::Forget(k) => {
                for t in &txs[..txs.len().saturating_sub(1)] {
                    let _ = t.send(SourceMsg::Forget(k.clone())).await;
                }
                txs.len().saturating_sub(1)
            }
        };
        if txs[to].send(msg).await.is_err() {
            return;
        }
    }
}

struct SourceState {
    parser: Parser,
    info: Arc<SourceInfo>,
    /// Since the last publish (per tick, not per record: no lock or key copy per line).
    lines: u64,
    bytes: u64,
    newest_ns: Option<i64>,
    cursor: Option<Cursor>,
}

impl SourceState {
    /// Publish what was handled since the last call: the position to the checkpoint store,
    /// lines, bytes and lag to the lag table, and the counts to `reported` for metrics.
    fn publish(&mut self, key: &str, shared: &LiveShared, now: i64, reported: &mut Reported) {
        if self.lines == 0 {
            return;
        }
        if let Some(c) = self.cursor.take()
            && let Ok(mut store) = shared.checkpoints.lock()
        {
            store.set(key, c);
        }
        if let Ok(mut lag) = shared.lag.lock() {
            let l = match lag.get_mut(key) {
                Some(l) => l,
                None => lag.entry(key.to_string()).or_insert_with(|| SourceLag {
                    kind: self.info.origin.kind,
                    ..SourceLag::default()
                }),
            };
            l.lines += self.lines;
            l.bytes += self.bytes;
            if let Some(t) = self.newest_ns.take() {
                l.lag_ms = Some((now - t) / 1_000_000);
            }
        }
        reported.records += self.lines;
        let read = reported.read.entry(self.info.origin.kind).or_default();
        read.0 += std::mem::take(&mut self.lines);
        read.1 += std::mem::take(&mut self.bytes);
    }
}

/// What a worker last reported as metrics, to report deltas of the stages' counters.
#[derive(Default)]
struct Reported {
    /// Records handled since the last tick.
    records: u64,
    /// Per source kind: lines and bytes published since the last report.
    read: HashMap<&'static str, (u64, u64)>,
    /// Parse counters of parsers that are gone (closed sources), still to be counted.
    retired: crate::parse::ParseStats,
    /// Parse counters as last reported (live parsers plus retired).
    parse: crate::parse::ParseStats,
    /// Rule hits as last reported, per rule (reset when the detector is rebuilt).
    rule_hits: Vec<u64>,
    /// Ticks since start, and the last published template counts and rates.
    ticks: u64,
    template_counts: HashMap<crate::event::Fingerprint, (u64, f64)>,
    templates_at: Option<Instant>,
    created: u64,
    evicted: u64,
    late: u64,
    /// Incident keys evicted and notifications inhibited, dataflow-wide, as last reported
    /// (by worker 0 only: the counters are shared).
    window_evicted: u64,
    window_inhibited: u64,
}

/// Run the live pipeline until every receiver is closed (or `shared.stop` is set and the
/// queues are drained). One receiver per window worker.
pub fn run_live(
    cfg: LiveConfig,
    rules: RulesHandle,
    receivers: Vec<mpsc::Receiver<SourceMsg>>,
    shared: LiveShared,
    sink: impl Fn(Incident) + Send + Sync + 'static,
) -> Result<Arc<window::WindowStats>, WindowError> {
    let mut window_cfg = cfg.window.clone();
    window_cfg.workers = receivers.len().max(1);
    let receivers: Arc<Mutex<Vec<Option<mpsc::Receiver<SourceMsg>>>>> =
        Arc::new(Mutex::new(receivers.into_iter().map(Some).collect()));
    let lateness = cfg.window.allowed_lateness.as_millis() as u64;
    window::run(
        &window_cfg,
        move |feeder| {
            let (index, _) = feeder.shard();
            let rx = receivers
                .lock()
                .map_err(|_| "receiver lock poisoned".to_string())?
                .get_mut(index)
                .and_then(Option::take)
                .ok_or_else(|| format!("no receiver for worker {index}"))?;
            let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
            let mut w = Worker {
                cfg: &cfg,
                rules: &rules,
                shared: &shared,
                rx,
                waker,
                sources: HashMap::new(),
                reported: Reported::default(),
                index,
                epoch: Instant::now(),
                line: 0,
                lateness,
            };
            w.run(feeder);
            Ok(())
        },
        sink,
    )
}

struct Worker<'a> {
    cfg: &'a LiveConfig,
    rules: &'a RulesHandle,
    shared: &'a LiveShared,
    rx: mpsc::Receiver<SourceMsg>,
    /// Unparks this worker's thread when a record arrives on a dry channel.
    waker: std::task::Waker,
    sources: HashMap<String, SourceState>,
    reported: Reported,
    index: usize,
    epoch: Instant,
    line: u64,
    lateness: u64,
}

enum Next {
    Reload,
    Done,
}

impl Worker<'_> {
    fn run(&mut self, feeder: &mut Feeder<'_>) {
        let mut fingerprinter = Fingerprinter::new(self.cfg.miner.clone());
        loop {
            let (set, generation) = self.rules.current();
            let core = match Core::with_fingerprinter(&self.cfg.parse, fingerprinter, &set) {
                Ok(c) => c,
                Err(e) => {
                    // The configuration was validated at start; this cannot change later.
                    tracing::error!(error = %e, "cannot build the pipeline stages");
                    return;
                }
            };
            let mut core = core.fingerprint_all(true);
            // A new detector counts from zero.
            self.reported.rule_hits.clear();
            let next = self.serve(&mut core, &set, generation, feeder);
            fingerprinter = core.into_fingerprinter();
            match next {
                Next::Reload => {
                    self.shared.stats.reloads.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        rules = self.rules.current().0.rules().len(),
                        "rules reloaded"
                    );
                }
                Next::Done => return,
            }
        }
    }

    fn serve(
        &mut self,
        core: &mut Core<'_>,
        set: &RuleSet,
        generation: u64,
        feeder: &mut Feeder<'_>,
    ) -> Next {
        let mut last_tick = Instant::now();
        loop {
            let mut closed = false;
            let mut taken = 0;
            while taken < BATCH {
                match self.rx.try_recv() {
                    Ok(msg) => {
                        self.handle(msg, core, set, feeder);
                        taken += 1;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            if !closed && taken == 0 && self.shared.stop.stopped() {
                closed = true;
            }
            if closed || last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.tick(core, set, feeder, closed);
            }
            if closed {
                return Next::Done;
            }
            if self.rules.generation() != generation {
                return Next::Reload;
            }
            if taken == 0 {
                // Nothing came: park until a record arrives or the next tick is due, so
                // an idle sidecar wakes at the tick rate rather than every LINGER. (A
                // tokio timer would wake twice per tick, at its wheel's slot boundary.)
                let mut cx = std::task::Context::from_waker(&self.waker);
                match self.rx.poll_recv(&mut cx) {
                    std::task::Poll::Ready(Some(msg)) => {
                        self.handle(msg, core, set, feeder);
                        // The rest of a burst follows: batch it as below.
                        std::thread::sleep(LINGER);
                    }
                    std::task::Poll::Ready(None) => {}
                    std::task::Poll::Pending => {
                        std::thread::park_timeout(TICK.saturating_sub(last_tick.elapsed()));
                    }
                }
            } else if taken < BATCH {
                std::thread::sleep(LINGER);
            }
        }
    }

    fn handle(
        &mut self,
        msg: SourceMsg,
        core: &mut Core<'_>,
        set: &RuleSet,
        feeder: &mut Feeder<'_>,
    ) {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        match msg {
            SourceMsg::Record(r) => {
                let key = &r.source.key;
                if !self.sources.contains_key(key) {
                    let parse = source_parse_config(&self.cfg.parse, &r.source);
                    let parser = Parser::new(&parse).or_else(|e| {
                        tracing::warn!(source = %r.source.origin.name, error = %e, "bad per-source parse settings (labels); using the configuration's");
                        Parser::new(&self.cfg.parse)
                    });
                    let Ok(parser) = parser else { return };
                    self.sources.insert(
                        key.clone(),
                        SourceState {
                            parser,
                            info: Arc::clone(&r.source),
                            lines: 0,
                            bytes: 0,
                            newest_ns: None,
                            cursor: None,
                        },
                    );
                }
                let Some(st) = self.sources.get_mut(key) else {
                    return;
                };
                // The source's latest metadata (a rename) wins.
                st.info = Arc::clone(&r.source);
                // Stage latency is sampled (the first line, then one in 64): a clock read
                // per stage per line would cost more than some stages.
                let sample = self.line.is_multiple_of(LATENCY_SAMPLE).then(Instant::now);
                self.line += 1;
                let ev = match r.framing {
                    Framing::Line => st.parser.push(&r.line, r.truncated, now_ms),
                    Framing::Content => {
                        st.parser
                            .push_content(&r.line, r.stream, r.time_ns, r.truncated, now_ms)
                    }
                };
                let parsed = sample.map(|t| t.elapsed());
                if let Some(ev) = ev {
                    let started = parsed.map(|_| Instant::now());
                    downstream(
                        core,
                        set,
                        feeder,
                        ev,
                        self.line,
                        &st.info.origin,
                        self.shared,
                    );
                    if let Some(t) = started {
                        events::StageLatency {
                            stage: "detect_fingerprint_window",
                            seconds: t.elapsed().as_secs_f64(),
                        }
                        .emit();
                    }
                }
                if let Some(d) = parsed {
                    events::StageLatency {
                        stage: "parse",
                        seconds: d.as_secs_f64(),
                    }
                    .emit();
                }
                st.lines += 1;
                // Bytes read, the newline included.
                st.bytes += r.line.len() as u64 + 1;
                if r.cursor.is_some() {
                    st.cursor = r.cursor;
                }
                if r.time_ns.is_some() {
                    st.newest_ns = st.newest_ns.max(r.time_ns);
                }
            }
            SourceMsg::Closed(info) => {
                if let Some(mut st) = self.sources.remove(&info.key) {
                    if let Some(ev) = st.parser.finish() {
                        downstream(
                            core,
                            set,
                            feeder,
                            ev,
                            self.line,
                            &st.info.origin,
                            self.shared,
                        );
                    }
                    add_stats(&mut self.reported.retired, st.parser.stats());
                    st.publish(&info.key, self.shared, now_ns(), &mut self.reported);
                }
            }
            SourceMsg::Forget(key) => {
                self.sources.remove(&key);
                if let Ok(mut s) = self.shared.checkpoints.lock() {
                    s.remove(&key);
                }
                if let Ok(mut lag) = self.shared.lag.lock() {
                    lag.remove(&key);
                }
            }
        }
    }

    /// Flush multiline events that waited long enough (or all, at the end), move event
    /// time to the wall clock, publish positions, and let the dataflow run.
    fn tick(&mut self, core: &mut Core<'_>, set: &RuleSet, feeder: &mut Feeder<'_>, end: bool) {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        for st in self.sources.values_mut() {
            let ev = if end {
                st.parser.finish()
            } else {
                st.parser.flush_due(now_ms)
            };
            if let Some(ev) = ev {
                downstream(
                    core,
                    set,
                    feeder,
                    ev,
                    self.line,
                    &st.info.origin,
                    self.shared,
                );
            }
        }
        let wall_ms = (now_ns() / 1_000_000).max(0) as u64;
        feeder.advance(wall_ms.saturating_sub(self.lateness));
        feeder.step();
        let now = now_ns();
        for (key, st) in &mut self.sources {
            st.publish(key, self.shared, now, &mut self.reported);
        }
        if self.reported.records > 0 {
            let n = std::mem::take(&mut self.reported.records);
            self.shared.stats.records.fetch_add(n, Ordering::Relaxed);
            self.shared
                .stats
                .last_record_ms
                .store((now / 1_000_000).max(0) as u64, Ordering::Relaxed);
        }
        self.report(core, set, feeder);
    }
}

impl Worker<'_> {
    /// Turn the stages' counters into metrics: deltas since the last report.
    fn report(&mut self, core: &Core<'_>, set: &RuleSet, feeder: &Feeder<'_>) {
        let r = &mut self.reported;
        for (kind, (lines, bytes)) in r.read.drain() {
            events::LinesRead { kind, lines, bytes }.emit();
        }
        let mut now = r.retired.clone();
        for st in self.sources.values() {
            add_stats(&mut now, st.parser.stats());
        }
        for f in crate::event::Fallback::ALL {
            let i = f as usize;
            let d = now.fallbacks[i].saturating_sub(r.parse.fallbacks[i]);
            if d > 0 {
                events::ParseFallbacks {
                    reason: f.as_str(),
                    count: d,
                }
                .emit();
            }
        }
        events::Parsed {
            events: now.events.saturating_sub(r.parse.events),
            multiline_joins: now.multiline_joins.saturating_sub(r.parse.multiline_joins),
        }
        .emit();
        r.parse = now;
        let per_rule = &core.detector().stats().per_rule;
        r.rule_hits.resize(per_rule.len(), 0);
        for (i, (&n, last)) in per_rule.iter().zip(r.rule_hits.iter_mut()).enumerate() {
            if n > *last {
                let rule = set.rule(crate::event::RuleIdx::try_from(i).unwrap_or_default());
                events::RuleHits {
                    rule: rule.id(),
                    severity: rule.rule.severity.as_str(),
                    count: n - *last,
                }
                .emit();
                if let Ok(mut h) = self.shared.rule_hits.lock() {
                    *h.entry(rule.id().to_string()).or_insert(0) += n - *last;
                }
                *last = n;
            }
        }
        let miner = core.fingerprinter().miner();
        let ms = miner.stats();
        events::Templates {
            live: miner.live_templates() as u64,
            created: ms.created.saturating_sub(r.created),
            evicted: ms.evicted.saturating_sub(r.evicted),
        }
        .emit();
        (r.created, r.evicted) = (ms.created, ms.evicted);
        r.ticks += 1;
        if r.ticks.is_multiple_of(TEMPLATES_EVERY_TICKS) {
            let secs = r
                .templates_at
                .map_or(0.0, |t| t.elapsed().as_secs_f64())
                .max(1e-3);
            r.templates_at = Some(Instant::now());
            let top = miner.top(TOP_TEMPLATES);
            let mut counts = HashMap::with_capacity(top.len());
            let stats: Vec<TemplateStat> = top
                .into_iter()
                .map(|(template, fingerprint, count)| {
                    let prev = r.template_counts.get(&fingerprint).copied();
                    let rate = prev.map_or(0.0, |(c, _)| count.saturating_sub(c) as f64 / secs);
                    let trend = match prev {
                        None => "new",
                        Some((_, old)) if rate > old * 1.5 && rate > 0.1 => "rising",
                        Some((_, old)) if rate < old / 1.5 => "falling",
                        Some(_) => "steady",
                    };
                    counts.insert(fingerprint, (count, rate));
                    TemplateStat {
                        template,
                        fingerprint,
                        count,
                        rate_per_sec: rate,
                        trend,
                    }
                })
                .collect();
            r.template_counts = counts;
            if let Ok(mut t) = self.shared.templates.lock() {
                t.insert(self.index, stats);
            }
        }
        let late = feeder.late();
        events::RecordsDeferred {
            reason: "late",
            count: late.saturating_sub(r.late),
        }
        .emit();
        r.late = late;
        if self.index == 0 {
            let s = feeder.stats();
            let evicted = s.evicted.load(std::sync::atomic::Ordering::Relaxed);
            let inhibited = s.inhibited.load(std::sync::atomic::Ordering::Relaxed);
            events::WindowPressure {
                evicted: evicted.saturating_sub(r.window_evicted),
                inhibited: inhibited.saturating_sub(r.window_inhibited),
            }
            .emit();
            (r.window_evicted, r.window_inhibited) = (evicted, inhibited);
        }
    }
}

/// Add one parser's counters to a sum.
fn add_stats(sum: &mut crate::parse::ParseStats, s: &crate::parse::ParseStats) {
    sum.lines += s.lines;
    sum.bytes += s.bytes;
    sum.events += s.events;
    sum.multiline_joins += s.multiline_joins;
    for (a, b) in sum.fallbacks.iter_mut().zip(s.fallbacks) {
        *a += b;
    }
}

fn downstream(
    core: &mut Core<'_>,
    set: &RuleSet,
    feeder: &mut Feeder<'_>,
    ev: &Event,
    line: u64,
    origin: &Origin,
    shared: &LiveShared,
) {
    // Lines without a time of their own are stamped with the wall clock.
    let time_ms = ev
        .time_ns
        .unwrap_or_else(now_ns)
        .div_euclid(1_000_000)
        .max(0) as u64;
    shared.stats.events.fetch_add(1, Ordering::Relaxed);
    core.process(ev, line, origin, |seen| {
        let Some(fp) = seen.fingerprint else { return };
        for &(from, to) in seen.merges {
            feeder.alias(from, to, fp.route, time_ms);
        }
        if let Some(hit) = hit_of(&seen, set, origin, time_ms, &fp) {
            shared.stats.hits.fetch_add(1, Ordering::Relaxed);
            feeder.push(hit);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Stream;
    use crate::source::Record;

    fn info(key: &str) -> Arc<SourceInfo> {
        Arc::new(SourceInfo {
            key: key.into(),
            origin: Origin::default(),
            container_id: None,
            log_format: Some("<Level> <Content>".into()),
            multiline: Some(false),
        })
    }

    #[test]
    fn route_keeps_each_source_on_one_worker_and_forgets_everywhere() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (tx, rx) = mpsc::channel(1024);
        let (txs, mut rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::channel(1024)).unzip();
        let sources: Vec<Arc<SourceInfo>> = (0..8).map(|i| info(&format!("s{i}"))).collect();
        rt.block_on(async {
            for n in 0..10 {
                for s in &sources {
                    let rec = Record {
                        source: Arc::clone(s),
                        stream: Stream::Stdout,
                        time_ns: None,
                        line: format!("{n}").into_bytes(),
                        truncated: false,
                        framing: Framing::Line,
                        cursor: None,
                    };
                    tx.send(SourceMsg::Record(rec)).await.expect("send");
                }
            }
            tx.send(SourceMsg::Forget("s0".into())).await.expect("send");
            drop(tx);
            route(rx, txs).await;
        });
        let mut owner: HashMap<String, usize> = HashMap::new();
        let mut forgets = 0;
        for (w, rx) in rxs.iter_mut().enumerate() {
            let mut last: HashMap<String, u32> = HashMap::new();
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    SourceMsg::Record(r) => {
                        assert_eq!(*owner.entry(r.source.key.clone()).or_insert(w), w);
                        let n: u32 = String::from_utf8_lossy(&r.line).parse().expect("n");
                        let prev = last.insert(r.source.key.clone(), n);
                        assert!(prev.is_none_or(|p| p + 1 == n), "in order");
                    }
                    SourceMsg::Forget(k) => {
                        assert_eq!(k, "s0");
                        forgets += 1;
                    }
                    SourceMsg::Closed(_) => {}
                }
            }
        }
        assert_eq!(owner.len(), 8);
        assert_eq!(forgets, 3, "every worker forgets");
    }

    #[test]
    fn labels_override_the_parse_settings() {
        let base = ParseConfig::default();
        let cfg = source_parse_config(&base, &info("x"));
        assert_eq!(cfg.log_format.as_deref(), Some("<Level> <Content>"));
        assert!(!cfg.multiline.enabled);
        let mut plain = SourceInfo::clone(&info("y"));
        plain.log_format = Some("plain".into());
        plain.multiline = None;
        let cfg = source_parse_config(&base, &plain);
        assert_eq!(cfg.format, Format::Plain);
        assert_eq!(cfg.multiline.enabled, base.multiline.enabled);
    }
}
