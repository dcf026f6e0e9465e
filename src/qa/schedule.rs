//! Running flows: once (`medic qa run`) or on their schedules inside `medic run`, one
//! browser at a time, never two runs of a flow at once. Each run's outcome goes through
//! [`QaState`] and the incidents it causes go to the caller's sink.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::flow::FlowFile;
use super::{FlowRun, QaConfig, QaState, QaStatus, next_due, now_ms, prune};
use crate::event::Incident;

/// Where runs keep their artifacts and state.
#[derive(Debug, Clone)]
pub struct QaPaths {
    /// `<state_dir>/qa`: the state file and `artifacts/<flow>/<run>/`.
    pub root: PathBuf,
    /// The prefix bug reports link artifacts with (`<public_url>/api/qa/artifacts`).
    pub link: String,
}

impl QaPaths {
    /// Paths under a state directory; `public_url` is medic's API as seen by ticket
    /// readers (none: links are API paths).
    pub fn new(state_dir: &Path, public_url: Option<&str>) -> QaPaths {
        QaPaths {
            root: super::schedule_root(state_dir),
            link: format!(
                "{}/api/qa/artifacts",
                public_url.unwrap_or("").trim_end_matches('/')
            ),
        }
    }

    /// The artifacts root.
    pub fn artifacts(&self) -> PathBuf {
        self.root.join("artifacts")
    }
}

/// Run one flow and record it: returns the run and the incident notifications.
pub async fn run_once(
    ff: &FlowFile,
    cfg: &QaConfig,
    state: &Mutex<QaState>,
    paths: &QaPaths,
) -> (FlowRun, Vec<Incident>) {
    let run = super::runner::run_flow(ff, cfg, &paths.artifacts()).await;
    let incidents = record(&run, ff, cfg, state, paths);
    (run, incidents)
}

/// Record a finished run in the QA state: returns the incident notifications.
fn record(
    run: &FlowRun,
    ff: &FlowFile,
    cfg: &QaConfig,
    state: &Mutex<QaState>,
    paths: &QaPaths,
) -> Vec<Incident> {
    let incidents = match state.lock() {
        Ok(mut s) => {
            let inc = s.record(run, ff, &paths.link);
            if let Err(e) = s.save() {
                tracing::error!(error = %e, "cannot save the QA state");
            }
            inc
        }
        Err(_) => Vec::new(),
    };
    prune(&paths.artifacts(), cfg.keep_runs);
    incidents
}

/// How often a deferred run looks at the host's load again.
const DEFER_CHECK: Duration = Duration::from_secs(5);

/// Show `flow` waiting for a host `busy` (0 to 1), then wait a while.
async fn wait_for_calm(
    status: &QaStatus,
    flow: &str,
    busy: f64,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    status.deferring(flow, busy);
    tokio::select! {
        _ = tokio::time::sleep(DEFER_CHECK) => {}
        _ = stop.changed() => {}
    }
}

/// The share of all CPUs' time (0 to 1) spent busy over `over`, from `/proc/stat`; none
/// where that cannot be read.
pub async fn cpu_busy(over: Duration) -> Option<f64> {
    let a = cpu_times();
    tokio::time::sleep(over).await;
    busy_between(a, cpu_times())
}

/// The busy share between two [`cpu_times`] readings.
fn busy_between(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<f64> {
    let (a, b) = (a?, b?);
    let total = b.0.checked_sub(a.0)?;
    let idle = b.1.checked_sub(a.1)?;
    (total > 0).then(|| 1.0 - idle as f64 / total as f64)
}

/// (all, idle + iowait) jiffies since boot, summed over CPUs.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total = v.iter().take(8).sum();
    Some((total, v.get(3)? + v.get(4).copied().unwrap_or(0)))
}

/// Run every flow on its schedule until `stop` turns true. One flow runs at a time (one
/// browser); a flow is never started while its previous run is going.
pub async fn schedule(
    flows: Vec<FlowFile>,
    cfg: QaConfig,
    paths: QaPaths,
    sink: Arc<dyn Fn(Incident) + Send + Sync>,
    status: Arc<QaStatus>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let state = Mutex::new(QaState::load(&paths.root));
    let mut due: Vec<Option<u64>> = flows
        .iter()
        .map(|f| {
            let last = state
                .lock()
                .ok()
                .and_then(|s| s.flows.get(&f.flow.name).map(|x| x.last_run_ms))
                .unwrap_or(0);
            next_due(&f.flow, last, cfg.jitter, now_ms())
        })
        .collect();
    status.set_flows(flows.iter().map(|f| f.flow.name.clone()).collect());
    loop {
        if *stop.borrow() {
            return;
        }
        let now = now_ms();
        let next = due
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.map(|d| (i, d)))
            .min_by_key(|(_, d)| *d);
        let Some((i, at)) = next else {
            // Nothing scheduled: wait for the stop.
            let _ = stop.changed().await;
            continue;
        };
        if at > now {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis((at - now).min(60_000))) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let ff = &flows[i];
        // The log pipeline comes first: a due run waits while the host is busy, checking
        // every few seconds, and runs anyway once it has waited `max_defer`.
        let may_wait =
            cfg.busy_cpu < 1.0 && now_ms().saturating_sub(at) < cfg.max_defer.as_millis() as u64;
        if may_wait {
            let busy = cpu_busy(Duration::from_secs(1)).await;
            if let Some(b) = busy.filter(|b| *b >= cfg.busy_cpu) {
                wait_for_calm(&status, &ff.flow.name, b, &mut stop).await;
                continue;
            }
        }
        status.started(&ff.flow.name);
        let started = now_ms();
        let before = cpu_times();
        let run = super::runner::run_flow(ff, &cfg, &paths.artifacts()).await;
        let busy = busy_between(before, cpu_times());
        // An idle-priority browser on a host that got busy mid-run fails by timeout,
        // which says nothing about the site: the run does not count and is tried again.
        if !run.passed
            && may_wait
            && let Some(b) = busy.filter(|b| *b >= cfg.busy_cpu)
        {
            let _ = std::fs::remove_dir_all(paths.artifacts().join(&run.run_dir));
            wait_for_calm(&status, &ff.flow.name, b, &mut stop).await;
            continue;
        }
        let incidents = record(&run, ff, &cfg, &state, &paths);
        for inc in incidents {
            sink(inc);
        }
        status.finished(&run);
        due[i] = next_due(&ff.flow, started, cfg.jitter, now_ms());
    }
}
