//! Telemetry: process-level measurements shared by every stage.
//!
//! Stages keep their own counters (`ParseStats`, `DetectStats`, `MinerStats`) and report
//! them per batch; this module owns what belongs to the process, such as peak memory.

/// Peak resident set size of this process in bytes (`VmHWM`), or 0 where the platform does
/// not report it.
pub fn peak_rss_bytes() -> u64 {
    proc_status_kib("VmHWM:").map_or(0, |k| k * 1024)
}

fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
