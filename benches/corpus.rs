//! The benchmark corpus: `gen_corpus.py --lines 1000000 --format docker-json`, generated once
//! into `target/bench/` (or taken from `MEDIC_BENCH_CORPUS`). Criterion iterates over its
//! first `MEDIC_BENCH_LINES` lines (default 200,000) held in memory, so a sample stays
//! under a second; `medic bench` and `benches/run.sh` stream the whole file.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The corpus file, generated on first use.
pub fn path() -> PathBuf {
    if let Ok(p) = std::env::var("MEDIC_BENCH_CORPUS") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/bench/corpus-1m.log");
    if !out.exists() {
        std::fs::create_dir_all(out.parent().expect("has parent")).expect("create target/bench");
        let status = Command::new("python3")
            .arg(root.join("../shared/tools/gen_corpus.py"))
            .args([
                "--lines",
                "1000000",
                "--format",
                "docker-json",
                "--seed",
                "1",
                "--out",
            ])
            .arg(&out)
            .status()
            .expect("python3 runs gen_corpus.py");
        assert!(status.success(), "gen_corpus.py failed");
    }
    out
}

/// The first lines of the corpus, each without its newline, and their total bytes.
pub fn lines() -> (Vec<Vec<u8>>, u64) {
    let limit: usize = std::env::var("MEDIC_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let data = std::fs::read(path()).expect("read corpus");
    let lines: Vec<Vec<u8>> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .take(limit)
        .map(<[u8]>::to_vec)
        .collect();
    let bytes = lines.iter().map(|l| l.len() as u64 + 1).sum();
    (lines, bytes)
}
