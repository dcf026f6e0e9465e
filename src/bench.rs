//! `medic bench`: throughput of each stage and end to end, on one core, streaming from a
//! file (so memory stays what production would use).
//!
//! Each stage is timed by difference: one pass only splits lines, the next also parses,
//! then detects, then fingerprints. A stage's rate is the lines divided by the time it
//! added. Every pass is repeated and the fastest kept, which removes cold-cache noise.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::detect::RuleSet;
use crate::event::Origin;
use crate::fingerprint::MinerConfig;
use crate::parse::ParseConfig;
use crate::pipeline::{Core, Depth};
use crate::telemetry;

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
    /// End-to-end seconds (read + parse + detect + fingerprint).
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
    /// Per stage: `read`, `parse`, `detect`, `fingerprint`.
    pub stages: std::collections::BTreeMap<&'static str, StageReport>,
}

/// Run the benchmark over `input`.
pub fn run(
    input: &Path,
    parse: &ParseConfig,
    miner: &MinerConfig,
    rules: &RuleSet,
    repeat: usize,
) -> Result<BenchReport, Box<dyn std::error::Error + Send + Sync>> {
    let bytes = std::fs::metadata(input)?.len();
    let origin = Origin {
        kind: "replay",
        name: input.display().to_string(),
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
            let mut core = Core::new(parse, miner.clone(), rules)?.with_depth(*depth);
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
    let mut stages = std::collections::BTreeMap::new();
    stages.insert("read", stage(best[0]));
    stages.insert("parse", stage(best[1] - best[0]));
    stages.insert("detect", stage(best[2] - best[1]));
    stages.insert("fingerprint", stage(best[3] - best[2]));
    let total = best[3].max(1e-9);
    Ok(BenchReport {
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
    })
}
