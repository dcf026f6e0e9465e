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
    let incidents = match state.lock() {
        Ok(mut s) => {
            let inc = s.record(&run, ff, &paths.link);
            if let Err(e) = s.save() {
                tracing::error!(error = %e, "cannot save the QA state");
            }
            inc
        }
        Err(_) => Vec::new(),
    };
    prune(&paths.artifacts(), cfg.keep_runs);
    (run, incidents)
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
        status.started(&ff.flow.name);
        let started = now_ms();
        let (run, incidents) = run_once(ff, &cfg, &state, &paths).await;
        for inc in incidents {
            sink(inc);
        }
        status.finished(&run);
        due[i] = next_due(&ff.flow, started, cfg.jitter, now_ms());
    }
}
