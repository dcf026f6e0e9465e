//! The only module that knows every stage: it wires source → parse → detect → fingerprint
//! for one stream of lines.
//!
//! [`Core`] is synchronous and allocation-free per line in the steady state. The commands
//! (`replay`, `templates`, `bench`) and later the windowing dataflow drive it.

mod live;
pub mod tickets;

pub use live::{
    LiveConfig, LiveShared, LiveStats, RulesHandle, TemplateStat, route, run_live,
    source_parse_config,
};

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::detect::{Detector, RuleSet};
use crate::event::{
    CountWithin, Detection, Event, Fingerprint, Hit, Incident, IncidentKey, Origin, Severity,
};
use crate::fingerprint::{Fingerprinted, Fingerprinter, MinerConfig};
use crate::parse::{ParseConfig, ParseError, Parser};
use crate::source::LineReader;
use crate::window::{self, WindowConfig, WindowError};

/// Lines per block when several workers share one input ([`Core::run_share`]).
pub const SHARE_BLOCK_LINES: u64 = 256;

/// How far, in event time, one replay worker may run ahead of the slowest: what is ahead
/// waits in the window stage's buffers, so this bounds them (a minute of a busy log is a few
/// MiB of hits).
const REPLAY_MAX_LEAD_MS: u64 = 60_000;

/// Which stages to run; lets the benchmark time each stage by difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Depth {
    /// Split lines only.
    Read,
    /// And parse.
    Parse,
    /// And detect.
    Detect,
    /// And fingerprint.
    Fingerprint,
}

/// What the core saw of one event.
#[derive(Debug)]
pub struct Seen<'a> {
    /// The event.
    pub event: &'a Event,
    /// Rule hits (empty below [`Depth::Detect`]).
    pub detection: &'a Detection,
    /// Its fingerprint (only at [`Depth::Fingerprint`]).
    pub fingerprint: Option<Fingerprinted>,
    /// The fingerprinter, to look templates up.
    pub fingerprinter: &'a Fingerprinter,
    /// The input line at which the event was complete (its own line when multiline
    /// joining is off).
    pub line: u64,
    /// Template merges caused by this event: (retired fingerprint, new fingerprint).
    pub merges: &'a [(Fingerprint, Fingerprint)],
}

/// parse → detect → fingerprint for one stream.
#[derive(Debug)]
pub struct Core<'r> {
    parser: Parser,
    detector: Detector<'r>,
    fingerprinter: Fingerprinter,
    detection: Detection,
    depth: Depth,
    merges: Vec<(Fingerprint, Fingerprint)>,
    /// Fingerprint only events that hit a rule (the production path), or every event
    /// (`medic templates`, benchmarks).
    fingerprint_all: bool,
}

impl<'r> Core<'r> {
    /// Build the stages.
    pub fn new(
        parse: &ParseConfig,
        miner: MinerConfig,
        rules: &'r RuleSet,
    ) -> Result<Core<'r>, ParseError> {
        Ok(Core {
            parser: Parser::new(parse)?,
            detector: Detector::new(rules),
            fingerprinter: Fingerprinter::new(miner),
            detection: Detection::default(),
            depth: Depth::Fingerprint,
            merges: Vec::new(),
            fingerprint_all: true,
        })
    }

    /// Build the stages around an existing fingerprinter: after a rule reload, templates
    /// and their history carry over.
    pub fn with_fingerprinter(
        parse: &ParseConfig,
        fingerprinter: Fingerprinter,
        rules: &'r RuleSet,
    ) -> Result<Core<'r>, ParseError> {
        Ok(Core {
            parser: Parser::new(parse)?,
            detector: Detector::new(rules),
            fingerprinter,
            detection: Detection::default(),
            depth: Depth::Fingerprint,
            merges: Vec::new(),
            fingerprint_all: true,
        })
    }

    /// Give the fingerprinter back (to rebuild the stages around it).
    pub fn into_fingerprinter(self) -> Fingerprinter {
        self.fingerprinter
    }

    /// Detect and fingerprint one event that another parser produced (live sources keep a
    /// parser per stream, and share this core's detector and templates).
    pub fn process(&mut self, ev: &Event, line: u64, origin: &Origin, mut f: impl FnMut(Seen<'_>)) {
        Self::downstream(
            ev,
            line,
            origin,
            self.depth,
            self.fingerprint_all,
            &mut self.detector,
            &mut self.fingerprinter,
            &mut self.detection,
            &mut self.merges,
            &mut f,
        );
    }

    /// Stop after `depth`.
    pub fn with_depth(mut self, depth: Depth) -> Self {
        self.depth = depth;
        self
    }

    /// Fingerprint every event (default) or only rule hits.
    pub fn fingerprint_all(mut self, all: bool) -> Self {
        self.fingerprint_all = all;
        self
    }

    /// The parser (for counters).
    pub fn parser(&self) -> &Parser {
        &self.parser
    }

    /// The detector (for counters and rules).
    pub fn detector(&self) -> &Detector<'r> {
        &self.detector
    }

    /// The fingerprinter (for templates and counters).
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fingerprinter
    }

    /// Read `input` to its end, calling `f` for every event. Returns the lines read.
    pub fn run<R: Read>(
        &mut self,
        input: R,
        origin: &Origin,
        f: impl FnMut(Seen<'_>),
    ) -> std::io::Result<u64> {
        self.run_share(input, origin, (0, 1), f)
    }

    /// Like [`Core::run`], but only processes this share `(index, of)` of the input: blocks
    /// of [`SHARE_BLOCK_LINES`] lines taken in turn, so that workers replaying one file stay
    /// close in event time (the window stage buffers whatever runs ahead of the slowest
    /// worker). A multiline event that crosses a block boundary is split there.
    pub fn run_share<R: Read>(
        &mut self,
        input: R,
        origin: &Origin,
        share: (usize, usize),
        mut f: impl FnMut(Seen<'_>),
    ) -> std::io::Result<u64> {
        let (index, of) = (share.0 as u64, share.1.max(1) as u64);
        let Core {
            parser,
            detector,
            fingerprinter,
            detection,
            depth,
            merges,
            fingerprint_all,
        } = self;
        let mut reader = LineReader::new(input, parser.max_line_bytes());
        let mut emit = |ev: &Event, line: u64| {
            Self::downstream(
                ev,
                line,
                origin,
                *depth,
                *fingerprint_all,
                detector,
                fingerprinter,
                detection,
                merges,
                &mut f,
            )
        };
        let mut lines = 0u64;
        // Files replay at full speed: the multiline wait bound never fires mid-file, and
        // the last event is flushed at end of input.
        let now_ms = 0;
        while let Some((line, truncated)) = reader.next_line()? {
            lines += 1;
            if *depth == Depth::Read || (of > 1 && ((lines - 1) / SHARE_BLOCK_LINES) % of != index)
            {
                continue;
            }
            if let Some(ev) = parser.push(line, truncated, now_ms) {
                emit(ev, lines);
            }
        }
        if let Some(ev) = parser.finish() {
            emit(ev, lines);
        }
        Ok(lines)
    }

    #[allow(clippy::too_many_arguments)]
    fn downstream(
        ev: &Event,
        line: u64,
        origin: &Origin,
        depth: Depth,
        fingerprint_all: bool,
        detector: &mut Detector<'r>,
        fingerprinter: &mut Fingerprinter,
        detection: &mut Detection,
        merges: &mut Vec<(Fingerprint, Fingerprint)>,
        f: &mut impl FnMut(Seen<'_>),
    ) {
        detection.rules.clear();
        detection.severity = None;
        if depth >= Depth::Detect {
            detector.detect(ev, origin, detection);
        }
        let fingerprint = (depth >= Depth::Fingerprint && (fingerprint_all || detection.is_hit()))
            .then(|| fingerprinter.fingerprint(ev));
        merges.clear();
        fingerprinter.take_merges(merges);
        f(Seen {
            event: ev,
            detection,
            fingerprint,
            fingerprinter,
            line,
            merges,
        });
    }
}

/// What `replay` read, for its summary.
#[derive(Debug, Default, Clone)]
pub struct ReplaySummary {
    /// Physical lines read.
    pub lines: u64,
    /// Events after multiline joining.
    pub events: u64,
    /// Events that hit a rule.
    pub hits: u64,
    /// Templates created by the miners.
    pub templates: u64,
    /// Multiline joins.
    pub multiline_joins: u64,
    /// Parse fallbacks per reason, in [`crate::event::Fallback::ALL`] order.
    pub fallbacks: [u64; crate::event::Fallback::ALL.len()],
    /// Records fed to the window stage.
    pub window_records: u64,
    /// Records that arrived behind the watermark.
    pub late: u64,
    /// Incident keys evicted by the cap.
    pub evicted: u64,
    /// Notifications suppressed by inhibition.
    pub inhibited: u64,
    /// Incident notifications emitted.
    pub notifications: u64,
}

/// A replay error: an input could not be read, or the dataflow failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Building the stages failed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The window stage failed (including a feed's read error).
    #[error(transparent)]
    Window(#[from] WindowError),
}

/// The incident key, shard route and trigger of a hit, from the most severe matched rule's
/// `incident` settings. The default key is (service, fingerprint), routed by the template's
/// mining bucket so template merges re-key it on the same shard; a custom key does not
/// follow merges and is routed by itself.
fn incident_key(
    rule: Option<&crate::detect::CompiledRule>,
    service: Arc<str>,
    fp: &Fingerprinted,
) -> (IncidentKey, u64, Option<CountWithin>) {
    use crate::detect::rules::GroupBy;
    let settings = rule.and_then(|r| r.rule.incident.as_ref());
    let threshold = settings.and_then(|s| s.threshold).map(|t| CountWithin {
        count: t.count,
        within_ms: u64::try_from(t.within.as_millis()).unwrap_or(u64::MAX),
    });
    let group_by = settings
        .map(|s| s.group_by.as_slice())
        .filter(|g| !g.is_empty());
    let (Some(parts), Some(rule)) = (group_by, rule) else {
        let key = IncidentKey {
            service,
            fingerprint: fp.fingerprint,
        };
        return (key, fp.route, threshold);
    };
    if parts == [GroupBy::Service, GroupBy::Fingerprint]
        || parts == [GroupBy::Fingerprint, GroupBy::Service]
    {
        return (
            IncidentKey {
                service,
                fingerprint: fp.fingerprint,
            },
            fp.route,
            threshold,
        );
    }
    let mut id = Vec::new();
    if parts.contains(&GroupBy::Rule) {
        id.extend_from_slice(rule.id().as_bytes());
    }
    id.push(0);
    if parts.contains(&GroupBy::Fingerprint) {
        id.extend_from_slice(&fp.fingerprint.0.to_le_bytes());
    }
    let fingerprint = Fingerprint(xxhash_rust::xxh3::xxh3_64(&id));
    let service = if parts.contains(&GroupBy::Service) {
        service
    } else {
        "*".into()
    };
    (
        IncidentKey {
            service,
            fingerprint,
        },
        fingerprint.0,
        threshold,
    )
}

/// The window record of an event, when it hit a rule: only rule hits become incidents. A
/// hit whose template is new (after the warm-up) opens one at once through the
/// new-fingerprint trigger.
pub(crate) fn hit_of(
    seen: &Seen<'_>,
    rules: &RuleSet,
    origin: &Origin,
    time_ms: u64,
    fp: &Fingerprinted,
) -> Option<Hit> {
    if !seen.detection.is_hit() {
        return None;
    }
    let ev = seen.event;
    let mut hit_rules = Vec::with_capacity(seen.detection.rules.len());
    let mut inhibits = false;
    let mut labels = Vec::new();
    for &r in &seen.detection.rules {
        let rule = rules.rule(r);
        hit_rules.push(Arc::clone(rule.shared_id()));
        inhibits |= rule.rule.inhibits;
        labels.extend_from_slice(rule.shared_labels());
    }
    let service = Arc::clone(origin.service.as_ref().unwrap_or(&origin.name));
    let primary = seen.detection.rules.first().map(|&r| rules.rule(r));
    let (key, route, threshold) = incident_key(primary, service, fp);
    Some(Hit {
        time_ms,
        key,
        rules: hit_rules,
        severity: seen.detection.severity.unwrap_or(Severity::Low),
        inhibits,
        template: seen.fingerprinter.shared_template(ev, fp),
        text: ev.text.clone(),
        source: Arc::clone(&origin.name),
        labels,
        new_template: fp.new_template,
        route,
        threshold,
    })
}

/// Everything `replay` needs, owned, so every worker thread can build its own stages.
#[derive(Debug, Clone, Default)]
pub struct ReplayConfig {
    /// Parse settings.
    pub parse: ParseConfig,
    /// Miner settings.
    pub miner: MinerConfig,
    /// Window settings.
    pub window: WindowConfig,
    /// Where to report bytes and lines read as they are read (for a progress bar).
    pub progress: Option<Arc<Progress>>,
}

/// Input read so far, updated as workers read.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read.
    pub bytes: AtomicU64,
    /// Lines read.
    pub lines: AtomicU64,
}

/// Counts what passes through, per read call (not per line).
struct Counting<R> {
    inner: R,
    progress: Option<Arc<Progress>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = &self.progress {
            p.bytes.fetch_add(n as u64, Ordering::Relaxed);
            p.lines.fetch_add(
                memchr::memchr_iter(b'\n', &buf[..n]).count() as u64,
                Ordering::Relaxed,
            );
        }
        Ok(n)
    }
}

/// Replay files through parse → detect → fingerprint → window at full speed, in event time.
/// Files are shared among the window workers; each builds its own stages. `sink` gets
/// every incident notification.
pub fn replay(
    files: Vec<String>,
    cfg: ReplayConfig,
    rules: Arc<RuleSet>,
    sink: impl Fn(Incident) + Send + Sync + 'static,
) -> Result<ReplaySummary, ReplayError> {
    // Validate once up front so a bad log format is a clear error, not a worker failure.
    Parser::new(&cfg.parse)?;
    let summary = Arc::new(Mutex::new(ReplaySummary::default()));
    let shared = Arc::clone(&summary);
    let files = Arc::new(files);
    let stage_cfg = cfg.clone();
    let stats = window::run(
        &cfg.window,
        move |feeder| {
            feeder.bound_lead(REPLAY_MAX_LEAD_MS);
            let (index, peers) = feeder.shard();
            let rules = Arc::clone(&rules);
            let mut core = Core::new(&stage_cfg.parse, stage_cfg.miner.clone(), &rules)
                .map_err(|e| e.to_string())?
                .fingerprint_all(true);
            let mut mine = ReplaySummary::default();
            // Whole files are shared out when there are enough of them; otherwise every
            // worker reads every file and processes its share of line blocks. (Byte ranges
            // would put workers at different event times, and the window stage would buffer
            // everything ahead of the slowest one.)
            let split = files.len() < peers;
            let mine_files: Vec<&String> = if split {
                files.iter().collect()
            } else {
                files.iter().skip(index).step_by(peers).collect()
            };
            let share = if split { (index, peers) } else { (0, 1) };
            for file in mine_files {
                if split && file == "-" && index > 0 {
                    // Stdin can be read once only.
                    continue;
                }
                let share = if file == "-" { (0, 1) } else { share };
                let input = Counting {
                    inner: crate::source::open(file).map_err(|e| e.to_string())?,
                    // Workers sharing a file each read it whole: count it once.
                    progress: stage_cfg.progress.clone().filter(|_| share.0 == 0),
                };
                let origin = Origin {
                    kind: if file == "-" { "stdin" } else { "replay" },
                    name: file.as_str().into(),
                    ..Origin::default()
                };
                // Lines without a time of their own take the last time seen in the file.
                let mut last_ms = 0u64;
                let read = core
                    .run_share(input, &origin, share, |seen| {
                        let ev = seen.event;
                        if let Some(t) = ev.time_ns {
                            last_ms = u64::try_from(t / 1_000_000).unwrap_or(0);
                        }
                        let Some(fp) = seen.fingerprint else { return };
                        for &(from, to) in seen.merges {
                            feeder.alias(from, to, fp.route, last_ms);
                        }
                        if let Some(hit) = hit_of(&seen, &rules, &origin, last_ms, &fp) {
                            feeder.push(hit);
                        }
                    })
                    .map_err(|e| format!("reading {file}: {e}"))?;
                // Every worker reads a shared file whole; count its lines once.
                if share.0 == 0 {
                    mine.lines += read;
                }
            }
            let ps = core.parser().stats();
            mine.events = ps.events;
            mine.multiline_joins = ps.multiline_joins;
            mine.fallbacks = ps.fallbacks;
            mine.hits = core.detector().stats().hits;
            mine.templates = core.fingerprinter().miner().stats().created;
            let mut total = shared
                .lock()
                .map_err(|_| "summary lock poisoned".to_string())?;
            total.lines += mine.lines;
            total.events += mine.events;
            total.hits += mine.hits;
            total.templates += mine.templates;
            total.multiline_joins += mine.multiline_joins;
            for (t, m) in total.fallbacks.iter_mut().zip(mine.fallbacks) {
                *t += m;
            }
            Ok(())
        },
        sink,
    )?;
    let mut out = summary.lock().map(|s| s.clone()).unwrap_or_default();
    out.window_records = stats.records.load(Ordering::Relaxed);
    out.late = stats.late.load(Ordering::Relaxed);
    out.evicted = stats.evicted.load(Ordering::Relaxed);
    out.inhibited = stats.inhibited.load(Ordering::Relaxed);
    out.notifications = stats.emitted.load(Ordering::Relaxed);
    Ok(out)
}
