//! QA: scheduled browser flows as a side module of the sidecar.
//!
//! This stage owns flow files (`flow.rs`, checked by `medic check-flows`), their schedules
//! (`every:` or `cron.rs`), the Chromium runner (`runner.rs`, behind the `qa` feature),
//! failure artifacts, the bug report, JUnit output, and the lifecycle that turns runs into
//! incidents: a failing flow opens (then updates) one incident keyed by flow, step and
//! normalised error, and the next passing run resolves it. Those incidents take the same
//! path as log incidents: classification, then tickets. QA runs on its own thread and
//! never touches the log pipeline.

pub mod cron;
pub mod flow;
pub mod generate;
#[cfg(feature = "qa")]
pub mod runner;
#[cfg(feature = "qa")]
pub mod schedule;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::{
    Fingerprint, Incident, IncidentKey, IncidentState, Sample, Severity, Trigger, duration,
};
use flow::{FlowFile, Priority, Step};

/// The `qa:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QaConfig {
    /// Flow files or directories; empty disables QA in `medic run`.
    pub flows: Vec<PathBuf>,
    /// The browser (never downloaded).
    pub chromium: PathBuf,
    /// How long a step may wait for its condition.
    #[serde(with = "duration")]
    pub step_timeout: Duration,
    /// Extra tries of a failed step (flaky pages).
    pub retries: u32,
    /// Up to this much random delay added to each scheduled run, so flows spread out.
    #[serde(with = "duration")]
    pub jitter: Duration,
    /// Browser window and viewport, pixels.
    pub viewport: (u32, u32),
    /// Runs whose artifacts are kept per flow.
    pub keep_runs: usize,
    /// Run scheduled QA (the scheduler thread, the browser and every process it starts)
    /// under Linux's `SCHED_IDLE` policy, so a flow only gets CPU the log pipeline leaves
    /// free. `medic qa run` and `medic qa generate` run at normal priority.
    pub idle: bool,
    /// A due run waits while the host's CPUs are at least this busy (0 to 1; 1 never
    /// waits), so a browser never starts while the log pipeline needs the machine; a run
    /// that fails while the host was this busy does not count and is tried again.
    pub busy_cpu: f64,
    /// The longest a due run waits for the host to calm down; then it runs anyway.
    #[serde(with = "duration")]
    pub max_defer: Duration,
}

impl Default for QaConfig {
    fn default() -> Self {
        QaConfig {
            flows: Vec::new(),
            chromium: PathBuf::from("/usr/bin/chromium"),
            step_timeout: Duration::from_secs(10),
            retries: 1,
            jitter: Duration::from_secs(30),
            viewport: (1280, 800),
            keep_runs: 20,
            idle: true,
            busy_cpu: 0.8,
            max_defer: Duration::from_secs(15 * 60),
        }
    }
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRun {
    /// 0-based index.
    pub index: usize,
    /// The step as written (variables unexpanded).
    pub step: String,
    /// `passed`, `failed` or `skipped`.
    pub outcome: String,
    /// Time spent, ms.
    pub ms: u64,
    /// Tries.
    pub attempts: u32,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StepRun {
    /// A passed step.
    pub fn ok(index: usize, step: &Step, ms: u64, attempts: u32) -> StepRun {
        StepRun {
            index,
            step: step.describe(),
            outcome: "passed".into(),
            ms,
            attempts,
            error: None,
        }
    }

    /// A failed step.
    pub fn failed(index: usize, step: &Step, ms: u64, attempts: u32, error: &str) -> StepRun {
        StepRun {
            index,
            step: step.describe(),
            outcome: "failed".into(),
            ms,
            attempts,
            error: Some(error.to_string()),
        }
    }
}

/// One run of one flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRun {
    /// Flow name.
    pub flow: String,
    /// Flow file.
    pub file: String,
    /// Its priority.
    pub priority: Priority,
    /// Start, ms since the epoch.
    pub started_ms: u64,
    /// Wall time, ms.
    pub duration_ms: u64,
    /// Every step passed.
    pub passed: bool,
    /// Steps run, in order (the failed one last).
    pub steps: Vec<StepRun>,
    /// The failed step's index.
    pub failed_step: Option<usize>,
    /// Why it failed.
    pub error: Option<String>,
    /// The browser, the network or the target was unavailable: not the app's logic.
    pub infrastructure: bool,
    /// Console errors and uncaught exceptions.
    pub console_errors: Vec<String>,
    /// Requests that failed or answered 4xx/5xx.
    pub failed_requests: Vec<String>,
    /// The page's URL when it failed.
    pub url: Option<String>,
    /// Artifact file names in the run's directory.
    pub artifacts: Vec<String>,
    /// The run's directory, relative to the QA artifacts root (`<flow>/<run>`).
    pub run_dir: String,
    /// Every step of the flow, as written, for the bug report.
    pub flow_steps: Vec<String>,
}

/// A file-system-safe name.
pub fn slug(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "flow".into() } else { s }
}

impl FlowRun {
    /// A run about to start.
    pub fn new(ff: &FlowFile) -> FlowRun {
        let started_ms = now_ms();
        FlowRun {
            flow: ff.flow.name.clone(),
            file: ff.path.display().to_string(),
            priority: ff.flow.priority,
            started_ms,
            duration_ms: 0,
            passed: true,
            steps: Vec::new(),
            failed_step: None,
            error: None,
            infrastructure: false,
            console_errors: Vec::new(),
            failed_requests: Vec::new(),
            url: None,
            artifacts: Vec::new(),
            run_dir: format!("{}/{}", slug(&ff.flow.name), started_ms),
            flow_steps: ff.flow.steps.iter().map(Step::describe).collect(),
        }
    }

    /// The run could not get to its steps (or a step hit the browser or network).
    pub fn fail_infrastructure(&mut self, error: String) {
        self.passed = false;
        self.infrastructure = true;
        self.error = Some(error);
    }

    /// Step `i` failed.
    pub fn fail_at(&mut self, i: usize, error: String, infrastructure: bool) {
        self.passed = false;
        self.failed_step = Some(i);
        self.error = Some(error);
        self.infrastructure = infrastructure;
    }

    /// Write `report.json` (steps with timings, errors, requests) into `dir`.
    pub fn write_report(&mut self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        if !self.artifacts.iter().any(|a| a == "report.json") {
            self.artifacts.push("report.json".into());
        }
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)
    }

    /// The failed step as written, if any.
    fn failed_step_text(&self) -> Option<&str> {
        self.failed_step
            .and_then(|i| self.flow_steps.get(i))
            .map(String::as_str)
    }

    /// Error text with numbers masked, so the same failure keys the same incident.
    pub fn normalised_error(&self) -> String {
        let e = self.error.as_deref().unwrap_or("failed");
        let mut out = String::with_capacity(e.len());
        let mut in_num = false;
        for c in e.chars() {
            if c.is_ascii_digit() {
                if !in_num {
                    out.push_str("<*>");
                }
                in_num = true;
            } else {
                in_num = false;
                out.push(c);
            }
        }
        out
    }

    /// The incident template: flow, step and normalised error.
    pub fn template(&self) -> String {
        match (self.failed_step, self.failed_step_text()) {
            (Some(i), Some(step)) => format!(
                "QA flow {} fails at step {} ({step}): {}",
                self.flow,
                i + 1,
                self.normalised_error()
            ),
            _ => format!(
                "QA flow {} cannot run: {}",
                self.flow,
                self.normalised_error()
            ),
        }
    }

    /// The fingerprint: flow, step index and normalised error.
    pub fn fingerprint(&self) -> Fingerprint {
        let key = format!(
            "qa\0{}\0{}\0{}",
            self.flow,
            self.failed_step.map_or(-1, |i| i as i64),
            self.normalised_error()
        );
        Fingerprint(xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
    }

    /// The bug report: steps to reproduce, expected and actual, the suspected component
    /// and a likely root cause, and where the artifacts are.
    pub fn bug_report(&self, flow: &FlowFile, artifacts_link: &str) -> String {
        let mut r = String::new();
        match self.failed_step {
            Some(i) => r.push_str(&format!(
                "QA flow {:?} failed at step {} of {}: {}\n",
                self.flow,
                i + 1,
                self.flow_steps.len(),
                self.failed_step_text().unwrap_or("")
            )),
            None => r.push_str(&format!("QA flow {:?} could not run.\n", self.flow)),
        }
        r.push_str(&format!("Base URL: {}\n", flow.flow.base_url));
        r.push_str("Steps to reproduce:\n");
        let upto = self.failed_step.map_or(0, |i| i + 1);
        for (n, s) in self.flow_steps.iter().take(upto).enumerate() {
            let mark = if Some(n) == self.failed_step {
                "   <- fails here"
            } else {
                ""
            };
            r.push_str(&format!("  {}. {s}{mark}\n", n + 1));
        }
        if let Some(step) = self.failed_step.and_then(|i| flow.flow.steps.get(i)) {
            r.push_str(&format!("Expected: {}\n", step.expected()));
        }
        r.push_str(&format!(
            "Actual: {}\n",
            self.error.as_deref().unwrap_or("failed")
        ));
        let selector = self
            .failed_step
            .and_then(|i| flow.flow.steps.get(i))
            .and_then(Step::selector);
        let page = self.url.as_deref().unwrap_or(&flow.flow.base_url);
        r.push_str(&format!(
            "Suspected component: {}{}\n",
            page,
            selector.map(|s| format!(" ({s})")).unwrap_or_default()
        ));
        r.push_str(&format!("Likely root cause: {}\n", self.root_cause()));
        if !self.console_errors.is_empty() {
            r.push_str("Console errors:\n");
            for e in self.console_errors.iter().take(10) {
                r.push_str(&format!("  {e}\n"));
            }
        }
        if !self.failed_requests.is_empty() {
            r.push_str("Failed requests:\n");
            for e in self.failed_requests.iter().take(10) {
                r.push_str(&format!("  {e}\n"));
            }
        }
        if !self.artifacts.is_empty() {
            r.push_str(&format!(
                "Artifacts ({}): {artifacts_link}/{}\n",
                self.artifacts.join(", "),
                self.run_dir
            ));
        }
        r
    }

    /// The most telling evidence: a server error, then a console error, then the step.
    fn root_cause(&self) -> String {
        if self.infrastructure {
            return format!(
                "the browser, the network or the target is unavailable: {}",
                self.error.as_deref().unwrap_or("")
            );
        }
        if let Some(r) = self.failed_requests.iter().find(|r| r.starts_with('5')) {
            return format!("the server answered {r}");
        }
        if let Some(e) = self.console_errors.first() {
            return format!("a script error in the page: {e}");
        }
        if let Some(r) = self.failed_requests.first() {
            return format!("a request failed: {r}");
        }
        "the page did not reach the expected state; no server or script error was seen, so \
         look at the element's event handler or the page logic"
            .into()
    }
}

/// Incident state of one flow, kept across runs and restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowState {
    /// The open incident, if the flow is failing.
    pub open: Option<Incident>,
    /// Incidents that resolved, by fingerprint, so a recurrence reopens them.
    pub resolved: BTreeMap<String, Incident>,
    /// Runs so far, and failures.
    pub runs: u64,
    /// Failed runs so far.
    pub failures: u64,
    /// The last run's start, ms.
    pub last_run_ms: u64,
    /// Whether the last run passed.
    pub last_passed: bool,
}

/// Incident state of every flow, persisted as JSON in the state directory.
#[derive(Debug, Default)]
pub struct QaState {
    path: PathBuf,
    /// By flow name.
    pub flows: BTreeMap<String, FlowState>,
}

impl QaState {
    /// Load `<dir>/qa-state.json` (a missing or unreadable file is an empty state; an
    /// unreadable one is moved aside).
    pub fn load(dir: &Path) -> QaState {
        let path = dir.join("qa-state.json");
        let flows = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::error!(path = %path.display(), error = %e, "unreadable QA state; starting afresh");
                let _ = std::fs::rename(&path, path.with_extension("json.corrupt"));
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        QaState { path, flows }
    }

    /// Write atomically.
    pub fn save(&self) -> std::io::Result<()> {
        if let Some(d) = self.path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&self.flows).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &self.path)
    }

    /// Take a run's outcome; returns the incident notifications it causes: a failure opens
    /// or updates (or reopens) the flow's incident for that failure; a pass resolves the
    /// open one; a different failure resolves the old incident and opens a new one.
    pub fn record(
        &mut self,
        run: &FlowRun,
        flow: &FlowFile,
        artifacts_link: &str,
    ) -> Vec<Incident> {
        let st = self.flows.entry(run.flow.clone()).or_default();
        st.runs += 1;
        st.last_run_ms = run.started_ms;
        st.last_passed = run.passed;
        let now = run.started_ms + run.duration_ms;
        let mut out = Vec::new();
        let resolve = |mut inc: Incident, out: &mut Vec<Incident>, st: &mut FlowState| {
            inc.state = IncidentState::Resolved;
            inc.count_in_window = 0;
            st.resolved
                .insert(inc.key.fingerprint.to_string(), inc.clone());
            out.push(inc);
        };
        if run.passed {
            if let Some(inc) = st.open.take() {
                resolve(inc, &mut out, st);
            }
            return out;
        }
        st.failures += 1;
        let fp = run.fingerprint();
        if let Some(open) = st.open.take() {
            if open.key.fingerprint == fp {
                let mut inc = open;
                inc.state = IncidentState::Updated;
                inc.count += 1;
                inc.count_in_window = 1;
                inc.last_seen_ms = now;
                push_sample(&mut inc, now, run.bug_report(flow, artifacts_link));
                st.open = Some(inc.clone());
                out.push(inc);
                return out;
            }
            resolve(open, &mut out, st);
        }
        let severity = match run.priority {
            Priority::Critical => Severity::Critical,
            Priority::High => Severity::High,
            Priority::Medium => Severity::Medium,
        };
        let mut labels = vec![
            ("source".to_string(), "qa".to_string()),
            ("qa.flow".to_string(), run.flow.clone()),
            ("qa.run".to_string(), run.run_dir.clone()),
        ];
        if run.infrastructure {
            labels.push(("error_type".to_string(), "infrastructure".to_string()));
        }
        let inc = match st.resolved.remove(&fp.to_string()) {
            Some(mut old) => {
                old.state = IncidentState::Reopened;
                old.regression = true;
                old.count += 1;
                old.count_in_window = 1;
                old.last_seen_ms = now;
                old.labels = labels;
                push_sample(&mut old, now, run.bug_report(flow, artifacts_link));
                old
            }
            None => {
                let key = IncidentKey {
                    service: format!("qa:{}", run.flow).into(),
                    fingerprint: fp,
                };
                let id = format!(
                    "{:016x}",
                    xxhash_rust::xxh3::xxh3_64(
                        format!("{}\0{}\0{now}", key.service, fp).as_bytes()
                    )
                );
                Incident {
                    id,
                    key,
                    template: run.template(),
                    rules: vec!["qa-flow".into()],
                    severity,
                    state: IncidentState::Open,
                    trigger: Trigger::Threshold,
                    regression: false,
                    first_seen_ms: now,
                    last_seen_ms: now,
                    count: 1,
                    count_in_window: 1,
                    sources: vec![format!("qa:{}", run.file)],
                    samples: vec![Sample {
                        time_ms: now,
                        text: run.bug_report(flow, artifacts_link),
                    }],
                    labels,
                    related: Vec::new(),
                    inhibited_by: None,
                    late: 0,
                }
            }
        };
        st.open = Some(inc.clone());
        out.push(inc);
        out
    }
}

/// Keep the first report and the latest two.
fn push_sample(inc: &mut Incident, now: u64, text: String) {
    if inc.samples.len() >= 3 {
        inc.samples.remove(1);
    }
    inc.samples.push(Sample { time_ms: now, text });
}

/// JUnit XML for a set of runs (one test suite, one test case per flow).
pub fn junit(runs: &[FlowRun]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let failures = runs.iter().filter(|r| !r.passed).count();
    let time: f64 = runs.iter().map(|r| r.duration_ms as f64 / 1000.0).sum();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"medic-qa\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">\n",
        runs.len()
    );
    for r in runs {
        x.push_str(&format!(
            "  <testcase classname=\"qa\" name=\"{}\" file=\"{}\" time=\"{:.3}\">\n",
            esc(&r.flow),
            esc(&r.file),
            r.duration_ms as f64 / 1000.0
        ));
        if !r.passed {
            let step = r
                .failed_step
                .map(|i| format!("step {}: ", i + 1))
                .unwrap_or_default();
            x.push_str(&format!(
                "    <failure message=\"{}\" type=\"{}\">{}</failure>\n",
                esc(&format!("{step}{}", r.error.as_deref().unwrap_or("failed"))),
                if r.infrastructure {
                    "infrastructure"
                } else {
                    "assertion"
                },
                esc(&r
                    .steps
                    .iter()
                    .map(|s| format!(
                        "{} {} ({} ms){}",
                        s.outcome,
                        s.step,
                        s.ms,
                        s.error
                            .as_ref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join("\n"))
            ));
        }
        x.push_str("  </testcase>\n");
    }
    x.push_str("</testsuite>\n");
    x
}

/// Remove all but the newest `keep` run directories of each flow under `root`.
pub fn prune(root: &Path, keep: usize) {
    let Ok(flows) = std::fs::read_dir(root) else {
        return;
    };
    for f in flows.flatten() {
        let Ok(runs) = std::fs::read_dir(f.path()) else {
            continue;
        };
        let mut runs: Vec<PathBuf> = runs
            .flatten()
            .map(|r| r.path())
            .filter(|p| p.is_dir())
            .collect();
        runs.sort();
        let n = runs.len().saturating_sub(keep);
        for old in runs.into_iter().take(n) {
            let _ = std::fs::remove_dir_all(old);
        }
    }
}

/// What the QA module is doing, for the API's status and event stream.
#[derive(Debug)]
pub struct QaStatus {
    inner: std::sync::Mutex<QaStatusView>,
    live: tokio::sync::broadcast::Sender<FlowRun>,
}

/// A snapshot of [`QaStatus`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct QaStatusView {
    /// Scheduled flows.
    pub flows: Vec<String>,
    /// The flow running now.
    pub running: Option<String>,
    /// The flow whose due run waits for a busy host, and how busy it was (0 to 1).
    pub deferring: Option<(String, f64)>,
    /// Due runs that waited for a busy host (before starting, or because a busy host
    /// starved a failed run, which then did not count).
    pub deferred: u64,
    /// Runs since start.
    pub runs: u64,
    /// Failed runs since start.
    pub failures: u64,
    /// When the last run finished, ms.
    pub last_run_ms: Option<u64>,
    /// Flows whose last run failed.
    pub failing: Vec<String>,
    /// Infrastructure trouble in the last run (browser missing or crashed, target away).
    pub last_infrastructure_error: Option<String>,
}

impl Default for QaStatus {
    fn default() -> Self {
        QaStatus {
            inner: std::sync::Mutex::new(QaStatusView::default()),
            live: tokio::sync::broadcast::channel(64).0,
        }
    }
}

impl QaStatus {
    /// The scheduled flows.
    pub fn set_flows(&self, flows: Vec<String>) {
        if let Ok(mut s) = self.inner.lock() {
            s.flows = flows;
        }
    }

    /// A run started.
    pub fn started(&self, flow: &str) {
        if let Ok(mut s) = self.inner.lock() {
            s.running = Some(flow.to_string());
            s.deferring = None;
        }
    }

    /// A due run waits because the host is `busy` (0 to 1); counted once per wait.
    pub fn deferring(&self, flow: &str, busy: f64) {
        if let Ok(mut s) = self.inner.lock() {
            if s.deferring.as_ref().is_none_or(|(f, _)| f != flow) {
                s.deferred += 1;
            }
            s.deferring = Some((flow.to_string(), busy));
        }
    }

    /// A run finished: counted and broadcast.
    pub fn finished(&self, run: &FlowRun) {
        if let Ok(mut s) = self.inner.lock() {
            s.running = None;
            s.runs += 1;
            s.last_run_ms = Some(run.started_ms + run.duration_ms);
            s.failing.retain(|f| f != &run.flow);
            if !run.passed {
                s.failures += 1;
                s.failing.push(run.flow.clone());
            }
            s.last_infrastructure_error = if run.infrastructure {
                run.error.clone()
            } else {
                None
            };
        }
        let _ = self.live.send(run.clone());
    }

    /// A snapshot.
    pub fn view(&self) -> QaStatusView {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Finished runs from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<FlowRun> {
        self.live.subscribe()
    }
}

/// `<state_dir>/qa`: QA state and artifacts.
pub fn schedule_root(state_dir: &Path) -> PathBuf {
    state_dir.join("qa")
}

pub use crate::event::now_ms;

/// When a flow is next due after `last_ms` (its last start; 0 if never run): `every`
/// plus up to `jitter`, or the next cron time; a flow with neither runs only on demand.
pub fn next_due(flow: &flow::Flow, last_ms: u64, jitter: Duration, now: u64) -> Option<u64> {
    let spread = |seed: &str| {
        let j = jitter.as_millis() as u64;
        if j == 0 {
            0
        } else {
            xxhash_rust::xxh3::xxh3_64(format!("{seed}{last_ms}").as_bytes()) % j
        }
    };
    if let Some(every) = flow.every {
        let base = if last_ms == 0 {
            now
        } else {
            last_ms + every.as_millis() as u64
        };
        return Some(base + spread(&flow.name));
    }
    let c = cron::Cron::parse(flow.cron.as_deref()?).ok()?;
    let from = if last_ms == 0 { now } else { last_ms };
    c.next_after(from).map(|t| t + spread(&flow.name))
}

#[cfg(test)]
mod tests;
