//! `medic check-flows`, `medic qa run` and `medic qa generate`, and the QA thread of
//! `medic run`. Part of the binary, like `main.rs`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[cfg(feature = "qa")]
use anyhow::Context;
use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use medic::event::Incident;
#[cfg(feature = "qa")]
use medic::qa::flow::FlowFile;
use medic::qa::flow::{self};

use crate::load_config;

#[derive(Args)]
pub struct CheckFlowsArgs {
    /// Flow files or directories (default: the config's `qa.flows`).
    paths: Vec<PathBuf>,
    /// Configuration file (YAML).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum QaCommand {
    /// Run flows once; exits 1 if any failed.
    Run(QaRunArgs),
    /// Crawl a site and propose flows for review.
    Generate(QaGenerateArgs),
}

#[derive(Args)]
pub struct QaRunArgs {
    /// Configuration file (YAML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Flow files or directories [default: the config's `qa.flows`].
    #[arg(long)]
    flows: Vec<PathBuf>,
    /// State directory (QA state, artifacts, incident log, tickets) [default: the config's].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Send the incidents through classification to the ticket sinks, as `medic run` does.
    #[arg(long)]
    tickets: bool,
    /// Only these flows (by name).
    names: Vec<String>,
}

#[derive(Args)]
pub struct QaGenerateArgs {
    /// Where to start.
    #[arg(long)]
    url: String,
    /// Configuration file (YAML): the browser, and `escalate.llm` for LLM proposals.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory the proposals are written to (created).
    #[arg(long, default_value = "flows/proposed")]
    out: PathBuf,
    /// Link depth followed from the start page.
    #[arg(long, default_value_t = 2)]
    max_depth: usize,
    /// Pages visited at most.
    #[arg(long, default_value_t = 20)]
    max_pages: usize,
    /// Heuristic smoke flows only, even when an LLM is configured.
    #[arg(long)]
    no_llm: bool,
}

fn print_flow_errors(errors: &[flow::FlowError]) {
    for e in errors {
        eprintln!("{e}");
    }
}

/// Flow files from the paths given, else the configuration's.
#[cfg(feature = "qa")]
fn flow_files(paths: &[PathBuf], config: &[PathBuf]) -> Result<Vec<FlowFile>> {
    let paths = if paths.is_empty() { config } else { paths };
    if paths.is_empty() {
        bail!("no flow files: pass paths or set qa.flows in the configuration");
    }
    flow::load(paths).map_err(|errors| {
        print_flow_errors(&errors);
        anyhow::anyhow!("{} error(s) in flow files", errors.len())
    })
}

/// `medic check-flows`.
pub fn check_flows(a: CheckFlowsArgs) -> Result<ExitCode> {
    let config = load_config(a.config.as_deref())?;
    let paths = if a.paths.is_empty() {
        config.qa.flows.clone()
    } else {
        a.paths
    };
    if paths.is_empty() {
        bail!("no flow files: pass paths or set qa.flows in the configuration");
    }
    match flow::load(&paths) {
        Ok(flows) => {
            for f in &flows {
                println!(
                    "ok {} ({}, {} steps)",
                    f.path.display(),
                    f.flow.name,
                    f.flow.steps.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            print_flow_errors(&errors);
            eprintln!("{} error(s)", errors.len());
            Ok(ExitCode::from(1))
        }
    }
}

/// `medic qa ...`.
pub fn qa(cmd: QaCommand) -> Result<ExitCode> {
    match cmd {
        QaCommand::Run(a) => qa_run(a),
        QaCommand::Generate(a) => qa_generate(a),
    }
}

#[cfg(not(feature = "qa"))]
fn qa_run(_: QaRunArgs) -> Result<ExitCode> {
    bail!("this medic was built without the `qa` feature (browser flows)")
}

#[cfg(not(feature = "qa"))]
fn qa_generate(_: QaGenerateArgs) -> Result<ExitCode> {
    bail!("this medic was built without the `qa` feature (browser flows)")
}

#[cfg(feature = "qa")]
fn qa_run(a: QaRunArgs) -> Result<ExitCode> {
    use medic::qa::schedule::{QaPaths, run_once};

    let mut config = load_config(a.config.as_deref())?;
    if let Some(d) = &a.state_dir {
        config.state_dir = d.clone();
    }
    let mut flows = flow_files(&a.flows, &config.qa.flows)?;
    if !a.names.is_empty() {
        for n in &a.names {
            if !flows.iter().any(|f| &f.flow.name == n) {
                bail!("no flow named {n:?}");
            }
        }
        flows.retain(|f| a.names.contains(&f.flow.name));
    }
    let log = crate::live_cmd::IncidentLog::open(&config.incidents_path())?;
    let tickets = if a.tickets {
        Some(
            medic::pipeline::tickets::Tickets::open(
                &config.state_dir,
                &config.escalate,
                &config.tickets,
            )
            .context("cannot start the ticket path")?,
        )
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = tickets
        .as_ref()
        .map(|t| t.spawn(rt.handle(), stopped))
        .unwrap_or_default();
    let paths = QaPaths::new(&config.state_dir, config.tickets.public_url.as_deref());
    let state = std::sync::Mutex::new(medic::qa::QaState::load(&paths.root));
    let mut runs = Vec::new();
    for ff in &flows {
        let (run, incidents) = rt.block_on(run_once(ff, &config.qa, &state, &paths));
        match (&run.passed, run.failed_step) {
            (true, _) => println!("PASS {} ({} ms)", run.flow, run.duration_ms),
            (false, Some(i)) => println!(
                "FAIL {} at step {} ({}): {}",
                run.flow,
                i + 1,
                run.flow_steps.get(i).map_or("", String::as_str),
                run.error.as_deref().unwrap_or("")
            ),
            (false, None) => println!("FAIL {}: {}", run.flow, run.error.as_deref().unwrap_or("")),
        }
        if !run.passed {
            println!(
                "     artifacts: {}",
                paths.artifacts().join(&run.run_dir).display()
            );
        }
        for inc in &incidents {
            log.append(inc);
            if let Some(t) = &tickets {
                t.submit(inc);
            }
        }
        runs.push(run);
    }
    if let Some(path) = &a.junit {
        std::fs::write(path, medic::qa::junit(&runs))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(t) = &tickets {
        let waiting = rt.block_on(t.drain(std::time::Duration::from_secs(30)));
        if waiting > 0 {
            eprintln!(
                "medic qa run: {waiting} ticket action(s) left in the outbox for the next run"
            );
        }
    }
    let _ = stop.send(true);
    for task in tasks {
        let _ = rt.block_on(task);
    }
    let failed = runs.iter().filter(|r| !r.passed).count();
    eprintln!("medic qa run: {} flow(s), {failed} failed", runs.len());
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(feature = "qa")]
fn qa_generate(a: QaGenerateArgs) -> Result<ExitCode> {
    use medic::qa::generate;

    let config = load_config(a.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let base = a.url.trim_end_matches('/').to_string();
    let (pages, skipped) = rt
        .block_on(generate::crawl(
            &config.qa,
            &a.url,
            a.max_depth,
            a.max_pages,
        ))
        .map_err(|e| anyhow::anyhow!("crawl of {} failed: {e}", a.url))?;
    eprintln!(
        "medic qa generate: crawled {} page(s){}",
        pages.len(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(", skipped {}", skipped.join(", "))
        }
    );
    for p in &pages {
        eprintln!(
            "  {} {} ({} links, {} forms, {} buttons{})",
            p.status,
            p.path,
            p.links.len(),
            p.forms.len(),
            p.buttons.len(),
            if p.console_errors.is_empty() {
                String::new()
            } else {
                format!(", {} console errors", p.console_errors.len())
            }
        );
    }
    let mut proposals = generate::heuristic_flows(&base, &pages);
    if config.escalate.llm.is_some() && !a.no_llm {
        let escalator = medic::escalate::Escalator::new(&config.escalate)?;
        let (system, user) = generate::llm_prompt(&base, &pages);
        let user = escalator.redactor().redact(&user).into_owned();
        match rt.block_on(escalator.complete(&system, &user)) {
            Some(Ok(answer)) => {
                for (i, doc) in generate::split_documents(&answer).into_iter().enumerate() {
                    let name = format!("llm-{}.yaml", i + 1);
                    match flow::parse(&name, &doc) {
                        Ok(f) => proposals.push((
                            format!("llm-{}.yaml", medic::qa::slug(&f.flow.name)),
                            format!(
                                "# Proposed by an LLM from a crawl of {base}; review before enabling.\n{doc}\n"
                            ),
                        )),
                        Err(errors) => {
                            eprintln!("medic qa generate: dropped an invalid LLM proposal:");
                            print_flow_errors(&errors);
                        }
                    }
                }
            }
            Some(Err(e)) => {
                eprintln!("medic qa generate: LLM proposals failed ({e}); heuristic flows only")
            }
            None => {}
        }
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    for (name, text) in &proposals {
        let path = a.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    eprintln!(
        "medic qa generate: {} proposal(s) in {}; review them, then move them into qa.flows to enable",
        proposals.len(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Start the QA scheduler of `medic run` on its own thread and runtime, so browser work
/// never shares a thread with sources or the pipeline. Returns the stop switch and the
/// thread.
#[cfg(feature = "qa")]
pub fn spawn_scheduler(
    config: &medic::config::Config,
    sink: Arc<dyn Fn(Incident) + Send + Sync>,
    status: Arc<medic::qa::QaStatus>,
) -> Result<
    Option<(
        tokio::sync::watch::Sender<bool>,
        std::thread::JoinHandle<()>,
    )>,
> {
    if config.qa.flows.is_empty() {
        return Ok(None);
    }
    let flows = flow_files(&[], &config.qa.flows)?;
    let cfg = config.qa.clone();
    let paths =
        medic::qa::schedule::QaPaths::new(&config.state_dir, config.tickets.public_url.as_deref());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("medic-qa".into())
        .spawn(move || {
            // Before the runtime, so its blocking threads and every browser inherit it.
            if cfg.idle
                && let Err(e) = medic::qa::runner::make_current_thread_idle()
            {
                tracing::warn!(error = %e, "cannot put QA under SCHED_IDLE; it runs at normal priority");
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the QA runtime");
                    return;
                }
            };
            rt.block_on(medic::qa::schedule::schedule(
                flows, cfg, paths, sink, status, stopped,
            ));
        })?;
    Ok(Some((stop, thread)))
}

/// Without the `qa` feature, configured flows are an error at start.
#[cfg(not(feature = "qa"))]
pub fn spawn_scheduler(
    config: &medic::config::Config,
    _sink: Arc<dyn Fn(Incident) + Send + Sync>,
    _status: Arc<medic::qa::QaStatus>,
) -> Result<
    Option<(
        tokio::sync::watch::Sender<bool>,
        std::thread::JoinHandle<()>,
    )>,
> {
    if config.qa.flows.is_empty() {
        return Ok(None);
    }
    bail!("qa.flows is set but this medic was built without the `qa` feature")
}
