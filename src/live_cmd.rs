//! The long-running commands, `medic run` and `medic tap`: signals, the checkpoint timer,
//! rule reloads and the incident log. Part of the binary, like `main.rs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use medic::api::{ApiParts, ApiState, Board, Health};
use medic::event::{Incident, format_rfc3339};
use medic::parse::Parser;
use medic::pipeline::{LiveConfig, LiveShared, LiveStats, RulesHandle, TemplateStat};
use medic::source::{CheckpointStore, SourceMsg, StartCursors, Stop};

use crate::{RunArgs, TapArgs, load_config, load_rules};

fn runtime() -> Result<tokio::runtime::Runtime> {
    // One thread drives every follower, timer and signal: at sidecar rates the work per
    // record is small, and a second worker thread only adds cross-thread wake-ups.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn open_store(dir: &Path) -> Result<(Arc<Mutex<CheckpointStore>>, StartCursors)> {
    let (store, warning) = CheckpointStore::open(dir)?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
        eprintln!("medic: warning: {w}");
    }
    let start: StartCursors = Arc::new(
        store
            .cursors()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    );
    Ok((Arc::new(Mutex::new(store)), start))
}

/// Write the read positions; false (and logged) when that failed.
fn flush_store(store: &Mutex<CheckpointStore>) -> bool {
    let result = match store.lock() {
        Ok(mut s) => s.flush(),
        Err(p) => p.into_inner().flush(),
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "cannot save read positions");
            false
        }
    }
}

/// The largest lag per source kind, as gauges.
fn report_lag(lag: &medic::source::LagTable) {
    let table = lag.lock().map(|l| l.clone()).unwrap_or_default();
    let mut by_kind: BTreeMap<&'static str, (f64, usize)> = BTreeMap::new();
    for l in table.values() {
        let e = by_kind.entry(l.kind).or_insert((0.0, 0));
        e.1 += 1;
        if let Some(ms) = l.lag_ms {
            e.0 = e.0.max(ms as f64 / 1000.0);
        }
    }
    for (kind, (seconds, sources)) in by_kind {
        medic::telemetry::events::SourceLag {
            kind,
            seconds,
            sources,
        }
        .emit();
    }
}

/// The rule files behind `paths` (directories expanded as the loader does) with their
/// modification times, to notice edits. Empty for the built-in rules.
fn rule_files(paths: &[PathBuf]) -> BTreeMap<PathBuf, Option<SystemTime>> {
    let roots: Vec<PathBuf> = if paths.is_empty() && Path::new("rules").is_dir() {
        vec![PathBuf::from("rules")]
    } else {
        paths.to_vec()
    };
    // A directory that cannot be read now is watched as itself; the reload reports it.
    let files = medic::detect::rules::expand_paths(&roots).unwrap_or(roots);
    files
        .into_iter()
        .map(|f| {
            let m = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
            (f, m)
        })
        .collect()
}

/// Appends incident notifications to the incident log.
pub struct IncidentLog {
    file: std::sync::Mutex<std::fs::File>,
}

impl IncidentLog {
    /// Open for appending, creating directories.
    pub fn open(path: &std::path::Path) -> Result<IncidentLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(IncidentLog {
            file: std::sync::Mutex::new(file),
        })
    }

    /// Append one notification.
    pub fn append(&self, inc: &Incident) {
        let Ok(line) = serde_json::to_string(inc) else {
            return;
        };
        if let Ok(mut f) = self.file.lock()
            && let Err(e) = writeln!(f, "{line}")
        {
            tracing::error!(error = %e, "cannot append to the incident log");
        }
    }
}

/// `medic run`.
pub fn run(a: RunArgs) -> Result<ExitCode> {
    let mut config = load_config(a.config.as_deref())?;
    if let Some(d) = a.state_dir {
        config.state_dir = d;
    }
    if let Some(w) = a.workers {
        config.window.workers = w;
    }
    let rule_paths = if a.rules.is_empty() {
        config.rules.clone()
    } else {
        a.rules.clone()
    };
    let rules = RulesHandle::new(load_rules(&rule_paths)?);
    // Validate once so a bad parse setting is an error now, not a worker failure later.
    Parser::new(&config.parse)?;
    let (store, start) = open_store(&config.state_dir)?;
    let incidents_path = config.incidents_path();
    let incidents = IncidentLog::open(&incidents_path)?;
    let tickets = if config.tickets.enabled {
        Some(Arc::new(
            medic::pipeline::tickets::Tickets::open(
                &config.state_dir,
                &config.escalate,
                &config.tickets,
            )
            .context("cannot start the ticket path")?,
        ))
    } else {
        None
    };
    let board = Arc::new(Board::new(1000));
    let sink_board = Arc::clone(&board);
    let sink_tickets = tickets.clone();
    let sink: Arc<dyn Fn(Incident) + Send + Sync> = Arc::new(move |inc: Incident| {
        sink_board.record(&inc);
        if let Some(t) = &sink_tickets {
            t.submit(&inc);
        }
        medic::telemetry::events::IncidentNotified {
            state: inc.state.as_str(),
            severity: inc.severity.as_str(),
        }
        .emit();
        tracing::info!(id = %inc.id, state = ?inc.state, service = %inc.key.service, count = inc.count, template = %inc.template, "incident");
        incidents.append(&inc);
    });

    let prometheus = medic::telemetry::install_prometheus().map_err(anyhow::Error::msg)?;
    let stats = Arc::new(LiveStats::default());
    let rule_hits: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let templates: Arc<Mutex<std::collections::HashMap<usize, Vec<TemplateStat>>>> = Arc::default();
    let lag: medic::source::LagTable = Arc::default();
    let rt = runtime()?;
    let (mut running, rx) = medic::source::start::start(
        &config.sources,
        config.parse.max_line_bytes,
        start,
        rt.handle(),
    );
    let health = Arc::new(Health {
        docker_enabled: config.sources.docker.enabled,
        docker_connected: Arc::clone(&running.docker_connected),
        store_writable: AtomicBool::new(true),
    });
    let (tickets_stop, tickets_stopped) = tokio::sync::watch::channel(false);
    let ticket_tasks = tickets
        .as_ref()
        .map(|t| t.spawn(rt.handle(), tickets_stopped))
        .unwrap_or_default();
    let qa_status = Arc::new(medic::qa::QaStatus::default());
    let qa = crate::qa_cmd::spawn_scheduler(&config, Arc::clone(&sink), Arc::clone(&qa_status))?;
    let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = if config.api.enabled {
        let rules = rules.clone();
        let list = move || {
            let (set, _) = rules.current();
            set.rules()
                .iter()
                .map(|r| {
                    (
                        r.id().to_string(),
                        r.rule.severity.as_str(),
                        r.rule.description.clone(),
                    )
                })
                .collect()
        };
        let state = ApiState::new(
            &config.api,
            ApiParts {
                prometheus: prometheus.clone(),
                health: Arc::clone(&health),
                lag: Arc::clone(&lag),
                board: Arc::clone(&board),
                rules: Arc::new(list),
                rule_hits: Arc::clone(&rule_hits),
                templates: Arc::clone(&templates),
                stats: Arc::clone(&stats),
                tickets: tickets.clone(),
                qa: qa.is_some().then(|| Arc::clone(&qa_status)),
                qa_artifacts: medic::qa::schedule_root(&config.state_dir).join("artifacts"),
            },
        )?;
        let server = rt.block_on(medic::api::serve(&config.api, state, async {
            let _ = api_stopped.await;
        }))?;
        eprintln!("medic run: API on http://{}", config.api.listen);
        Some(server)
    } else {
        None
    };
    let workers = config.window.workers.max(1);
    let receivers = if workers > 1 {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| mpsc::channel::<SourceMsg>(config.sources.channel_capacity.max(1)))
            .unzip();
        rt.spawn(medic::pipeline::route(rx, txs));
        rxs
    } else {
        vec![rx]
    };
    let shared = LiveShared {
        checkpoints: Arc::clone(&store),
        lag: Arc::clone(&lag),
        stats: Arc::clone(&stats),
        stop: Stop::default(),
        rule_hits: Arc::clone(&rule_hits),
        templates: Arc::clone(&templates),
    };
    let live_cfg = LiveConfig {
        parse: config.parse.clone(),
        miner: config.fingerprint.clone(),
        window: config.window.clone(),
    };
    let pipeline = {
        let (rules, shared) = (rules.clone(), shared.clone());
        std::thread::Builder::new()
            .name("medic-pipeline".into())
            .spawn(move || {
                medic::pipeline::run_live(live_cfg, rules, receivers, shared, move |i| sink(i))
            })?
    };
    eprintln!(
        "medic run: state in {}, incidents to {}",
        config.state_dir.display(),
        incidents_path.display()
    );
    let every = config
        .sources
        .checkpoint_interval
        .max(Duration::from_millis(10));
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut flush = tokio::time::interval(every);
        let mut watch = tokio::time::interval(Duration::from_secs(2));
        let mut status = tokio::time::interval(Duration::from_secs(60));
        let mut gauges = tokio::time::interval(Duration::from_secs(1));
        let mut last_flush = std::time::Instant::now();
        let mut seen = rule_files(&rule_paths);
        let reload = |why: &str| match load_rules(&rule_paths) {
            Ok(set) => {
                tracing::info!(reason = why, rules = set.rules().len(), "reloading rules");
                rules.replace(set);
                medic::telemetry::events::RulesReloaded { ok: true }.emit();
            }
            Err(e) => {
                tracing::error!(error = %e, "rule reload failed; keeping the current rules");
                medic::telemetry::events::RulesReloaded { ok: false }.emit();
            }
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => reload("SIGHUP"),
                _ = watch.tick() => {
                    let now = rule_files(&rule_paths);
                    if now != seen {
                        seen = now;
                        reload("rule file changed");
                    }
                }
                _ = flush.tick() => {
                    let ok = flush_store(&store);
                    if ok {
                        last_flush = std::time::Instant::now();
                    }
                    health.store_writable.store(ok, Ordering::Relaxed);
                    medic::telemetry::events::CheckpointAge {
                        seconds: last_flush.elapsed().as_secs_f64(),
                        failed: !ok,
                    }
                    .emit();
                    if pipeline.is_finished() {
                        break;
                    }
                }
                _ = gauges.tick() => {
                    report_lag(&lag);
                    if let Some(t) = &tickets {
                        t.report_depths();
                    }
                }
                _ = status.tick() => {
                    let lag = shared.lag.lock().map(|l| l.clone()).unwrap_or_default();
                    for (k, l) in lag {
                        tracing::info!(source = %k, lines = l.lines, bytes = l.bytes, lag_ms = ?l.lag_ms, "source");
                    }
                }
            }
        }
        tracing::info!("shutting down: stopping sources, draining the pipeline");
        running.stop().await;
        anyhow::Ok(())
    })?;
    let _ = api_stop.send(());
    if let Some(server) = api {
        let _ = rt.block_on(server);
    }
    shared.stop.stop();
    let result = pipeline
        .join()
        .map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?;
    flush_store(&store);
    let window = result?;
    if let Some(t) = &tickets {
        // Deliver what the last notifications queued, briefly: whatever is left stays in
        // the outbox and goes out on the next start.
        let waiting = rt.block_on(t.drain(Duration::from_secs(5)));
        if waiting > 0 {
            eprintln!(
                "medic run: {waiting} ticket action(s) left in the outbox for the next start"
            );
        }
    }
    if let Some((stop, thread)) = qa {
        let _ = stop.send(true);
        if thread.join().is_err() {
            tracing::error!("the QA thread panicked");
        }
    }
    let _ = tickets_stop.send(true);
    for task in ticket_tasks {
        let _ = rt.block_on(task);
    }
    let s = &shared.stats;
    eprintln!(
        "medic run: {} records, {} events, {} hits, {} notifications, {} late, {} rule reloads",
        s.records.load(Ordering::Relaxed),
        s.events.load(Ordering::Relaxed),
        s.hits.load(Ordering::Relaxed),
        window.emitted.load(Ordering::Relaxed),
        window.late.load(Ordering::Relaxed),
        s.reloads.load(Ordering::Relaxed),
    );
    Ok(ExitCode::SUCCESS)
}

/// `medic tap`.
pub fn tap(a: TapArgs) -> Result<ExitCode> {
    let config = load_config(a.config.as_deref())?;
    let (store, start) = match &a.state_dir {
        Some(d) => {
            let (s, start) = open_store(d)?;
            (Some(s), start)
        }
        None => (None, StartCursors::default()),
    };
    let rt = runtime()?;
    let (mut running, mut rx) = medic::source::start::start(
        &config.sources,
        config.parse.max_line_bytes,
        start,
        rt.handle(),
    );
    let every = config
        .sources
        .checkpoint_interval
        .max(Duration::from_millis(10));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut handled: BTreeMap<String, medic::source::Cursor> = BTreeMap::new();
    let mut count = 0u64;
    let mut bytes = 0u64;
    let limit = a.limit.unwrap_or(u64::MAX);
    let quiet = a.quiet;
    let started = std::time::Instant::now();
    let mut print = |msg: SourceMsg,
                     out: &mut std::io::BufWriter<std::io::StdoutLock<'_>>,
                     handled: &mut BTreeMap<String, medic::source::Cursor>|
     -> std::io::Result<u64> {
        match msg {
            SourceMsg::Record(r) => {
                count += 1;
                bytes += r.line.len() as u64 + 1;
                if let Some(c) = r.cursor {
                    handled.insert(r.source.key.clone(), c);
                }
                if quiet {
                    return Ok(count);
                }
                let o = &r.source.origin;
                let rec = serde_json::json!({
                    "source": o.kind,
                    "container": r.source.container_id.as_ref().map(|_| &o.name),
                    "container_id": r.source.container_id,
                    "file": (o.kind == "file").then_some(&o.name),
                    "stream": r.stream,
                    "timestamp": r.time_ns.map(format_rfc3339),
                    "message": String::from_utf8_lossy(&r.line),
                    "truncated": r.truncated,
                });
                writeln!(out, "{rec}")?;
            }
            SourceMsg::Closed(_) => {}
            SourceMsg::Forget(k) => {
                handled.remove(&k);
                if let Some(s) = &store
                    && let Ok(mut s) = s.lock()
                {
                    s.remove(&k);
                }
            }
        }
        Ok(count)
    };
    // Positions are stored only once the lines they cover are written out.
    let commit = |handled: &mut BTreeMap<String, medic::source::Cursor>| {
        if let Some(s) = &store
            && let Ok(mut s) = s.lock()
        {
            for (k, c) in std::mem::take(handled) {
                s.set(&k, c);
            }
        }
    };
    let result: Result<()> = rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut flush = tokio::time::interval(every);
        let mut n = 0;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = flush.tick() => {
                    if let Some(s) = &store {
                        flush_store(s);
                    }
                }
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    n = print(msg, &mut out, &mut handled)?;
                    while n < limit {
                        let Ok(m) = rx.try_recv() else { break };
                        n = print(m, &mut out, &mut handled)?;
                    }
                    out.flush()?;
                    commit(&mut handled);
                    if n >= limit {
                        break;
                    }
                    // Sources on other threads wake this one per record when it waits:
                    // linger so the next wake-up takes a batch.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        running.stop().await;
        // Whatever the sources queued before stopping is still printed and committed (up
        // to the limit).
        while n < limit {
            let Ok(m) = rx.try_recv() else { break };
            n = print(m, &mut out, &mut handled)?;
        }
        out.flush()?;
        commit(&mut handled);
        Ok(())
    });
    if let Some(s) = &store {
        let _ = flush_store(s);
    }
    match result {
        Ok(()) => {}
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {}
        Err(e) => return Err(e),
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "medic tap: {count} records, {bytes} bytes in {secs:.3} s ({:.0} lines/s, {:.2} MiB/s)",
        count as f64 / secs,
        bytes as f64 / secs / (1024.0 * 1024.0)
    );
    Ok(ExitCode::SUCCESS)
}
