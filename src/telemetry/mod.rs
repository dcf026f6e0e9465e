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

pub mod events;

/// The process-wide Prometheus recorder; `render()` gives the text exposition format.
pub type PrometheusHandle = metrics_exporter_prometheus::PrometheusHandle;

/// Install the Prometheus recorder once for this process (later calls return the same
/// handle), with buckets for the stage latency histograms.
pub fn install_prometheus() -> Result<PrometheusHandle, String> {
    static HANDLE: std::sync::OnceLock<Result<PrometheusHandle, String>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &[1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 2e-3, 1e-2, 5e-2, 0.25, 1.0],
                )
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| e.to_string())
                .inspect(|_| events::describe())
        })
        .clone()
}
