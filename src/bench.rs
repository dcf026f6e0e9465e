//! `medic bench`: throughput of each stage and end to end, on one core, streaming from a
//! file (so memory stays what production would use).
//!
//! Each stage is timed by difference: one pass only splits lines, the next also parses,
//! then detects, then fingerprints, and the last runs the whole pipeline through the
//! window stage (the timely dataflow) with one worker, then with more. A stage's rate is
//! the lines divided by the time it added. Every pass is repeated and the fastest kept,
//! which removes cold-cache noise.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::detect::RuleSet;
use crate::event::Origin;
use crate::fingerprint::MinerConfig;
use crate::parse::ParseConfig;
use crate::pipeline::{self, Core, Depth, ReplayConfig};
use crate::telemetry;
use crate::window::WindowConfig;

/// One stage's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Seconds this stage added.
    pub seconds: f64,
    /// Lines per second through this stage alone.
    pub lines_per_sec: f64,
    /// Input MiB per second through this stage alone.
    pub mib_per_sec: f64,
}

/// The whole report; printed as the last line with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Lines in the input.
    pub lines: u64,
    /// Bytes in the input.
    pub bytes: u64,
    /// End-to-end seconds (read + parse + detect + fingerprint + window, one worker).
    pub seconds: f64,
    /// End-to-end lines per second.
    pub lines_per_sec: f64,
    /// End-to-end MiB per second.
    pub mib_per_sec: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
    /// Events after multiline joining.
    pub events: u64,
    /// Events that hit a rule.
    pub hits: u64,
    /// Live templates at the end.
    pub templates: usize,
    /// Parse fallbacks, all reasons.
    pub fallbacks: u64,
    /// Read, parse, detect and fingerprint in one pass on one core, without the window
    /// stage: the rate the per-line work sustains, measured whole rather than summed from
    /// the stage differences below.
    pub core: StageReport,
    /// Per stage: `read`, `parse`, `detect`, `fingerprint`, `window`. A stage timed by
    /// difference whose pass was not slower than the one before it (machine noise larger
    /// than the stage) is left out here and named in `unmeasured`.
    pub stages: std::collections::BTreeMap<&'static str, StageReport>,
    /// Stages whose time was lost in the noise of the passes; `--repeat` helps.
    pub unmeasured: Vec<&'static str>,
    /// Distinct incidents found.
    pub incidents: u64,
    /// Incident notifications emitted.
    pub notifications: u64,
    /// Distinct incidents per second of end-to-end time.
    pub incidents_per_sec: f64,
    /// End to end (through the window stage) by worker count.
    pub workers: std::collections::BTreeMap<usize, StageReport>,
}

/// Run the benchmark over `input`: the core stages one by one, then the whole pipeline
/// through the window stage with each of `workers` worker counts.
pub fn run(
    input: &Path,
    parse: &ParseConfig,
    miner: &MinerConfig,
    window: &WindowConfig,
    rules: Arc<RuleSet>,
    repeat: usize,
    workers: &[usize],
) -> Result<BenchReport, Box<dyn std::error::Error + Send + Sync>> {
    let bytes = std::fs::metadata(input)?.len();
    let origin = Origin {
        kind: "replay",
        name: input.display().to_string().into(),
        ..Origin::default()
    };
    let depths = [Depth::Read, Depth::Parse, Depth::Detect, Depth::Fingerprint];
    let mut best = [f64::INFINITY; 4];
    let mut lines = 0;
    let mut events = 0;
    let mut hits = 0;
    let mut templates = 0;
    let mut fallbacks = 0;
    for _ in 0..repeat.max(1) {
        for (i, depth) in depths.iter().enumerate() {
            let mut core = Core::new(parse, miner.clone(), &rules)?.with_depth(*depth);
            let file = std::fs::File::open(input)?;
            let t = Instant::now();
            let mut n_events = 0u64;
            lines = core.run(file, &origin, |_| n_events += 1)?;
            best[i] = best[i].min(t.elapsed().as_secs_f64());
            if *depth == Depth::Fingerprint {
                events = n_events;
                hits = core.detector().stats().hits;
                templates = core.fingerprinter().miner().live_templates();
                fallbacks = core.parser().stats().fallbacks.iter().sum();
            }
        }
    }
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let stage = |secs: f64| {
        let secs = secs.max(1e-9);
        StageReport {
            seconds: secs,
            lines_per_sec: lines as f64 / secs,
            mib_per_sec: mib / secs,
        }
    };
    let mut by_workers = std::collections::BTreeMap::new();
    let mut incidents = 0;
    let mut notifications = 0;
    for &w in workers {
        let mut fastest = f64::INFINITY;
        for _ in 0..repeat.max(1) {
            let ids = Arc::new(Mutex::new(HashSet::new()));
            let sink_ids = Arc::clone(&ids);
            let cfg = ReplayConfig {
                parse: parse.clone(),
                miner: miner.clone(),
                window: WindowConfig {
                    workers: w,
                    ..window.clone()
                },
                progress: None,
            };
            let t = Instant::now();
            let summary = pipeline::replay(
                vec![input.display().to_string()],
                cfg,
                Arc::clone(&rules),
                move |inc| {
                    if let Ok(mut s) = sink_ids.lock() {
                        s.insert(inc.id);
                    }
                },
            )?;
            fastest = fastest.min(t.elapsed().as_secs_f64());
            if w == workers[0] {
                incidents = ids.lock().map(|s| s.len() as u64).unwrap_or(0);
                notifications = summary.notifications;
            }
        }
        by_workers.insert(w, stage(fastest));
    }
    let mut stages = std::collections::BTreeMap::new();
    let mut unmeasured = Vec::new();
    let mut add = |name: &'static str, secs: f64| {
        if secs > 0.0 {
            stages.insert(name, stage(secs));
        } else {
            unmeasured.push(name);
        }
    };
    add("read", best[0]);
    add("parse", best[1] - best[0]);
    add("detect", best[2] - best[1]);
    add("fingerprint", best[3] - best[2]);
    // The window stage's cost: the whole pipeline on one worker, less the core alone.
    let end_to_end = by_workers.get(&1).map_or(best[3], |s| s.seconds);
    if by_workers.contains_key(&1) {
        add("window", end_to_end - best[3]);
    }
    let total = end_to_end.max(1e-9);
    Ok(BenchReport {
        incidents,
        notifications,
        incidents_per_sec: incidents as f64 / total,
        workers: by_workers,
        core: stage(best[3]),
        lines,
        bytes,
        seconds: total,
        lines_per_sec: lines as f64 / total,
        mib_per_sec: mib / total,
        peak_rss_bytes: telemetry::peak_rss_bytes(),
        events,
        hits,
        templates,
        fallbacks,
        stages,
        unmeasured,
    })
}
