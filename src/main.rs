//! The `medic` binary: parse the command line, load configuration and rules, call the
//! library. `anyhow` lives here and nowhere else.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser as ClapParser, Subcommand};

use medic::config::Config;
use medic::detect::{self, RuleSet};
use medic::event::{Fallback, Fingerprint, Incident, Origin};
use medic::fingerprint::{ClusterId, MinerConfig};
use medic::parse::{Format, ParseConfig};
use medic::pipeline::{Core, ReplayConfig};

mod live_cmd;
mod qa_cmd;

// The pipeline allocates per hit and per incident, from several threads; glibc's allocator
// spent about 7% of replay time consolidating and unlinking chunks, mimalloc's thread-local
// free lists do not. Built without transparent huge pages (`no_thp`): mimalloc would ask for
// them on its arenas, and every touched 2 MiB page counts whole towards RSS (peak RSS of
// `medic bench` on 5M lines went from about 30 to between 66 and 125 MiB).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(ClapParser)]
#[command(
    name = "medic",
    version,
    about = "Log-pipeline sidecar for self-healing systems"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the core pipeline over files and print every rule hit as a JSON line.
    Replay(ReplayArgs),
    /// Print one {"fingerprint","template"} JSON object per input line, in input order.
    Templates(TemplatesArgs),
    /// Validate rule files and run their examples; exits non-zero on any error.
    CheckRules(CheckRulesArgs),
    /// Measure throughput per stage and end to end, and peak memory.
    Bench(BenchArgs),
    /// Print the default configuration, or check a configuration file.
    Config(ConfigArgs),
    /// The sidecar: follow the configured sources (by default every container of the local
    /// Docker engine) through the pipeline, appending incidents to the incident log.
    Run(RunArgs),
    /// Print every record the configured sources read, as JSON lines, until interrupted.
    Tap(TapArgs),
    /// Validate browser flow files; exits 1 on any error (each error is file:line:column).
    CheckFlows(qa_cmd::CheckFlowsArgs),
    /// Browser flows: run them once, or propose new ones from a crawl.
    #[command(subcommand)]
    Qa(qa_cmd::QaCommand),
    /// Exit 0 if a running medic answers its health endpoint (for container HEALTHCHECKs,
    /// where there is no curl).
    Healthcheck(HealthcheckArgs),
}

#[derive(Args)]
struct HealthcheckArgs {
    /// The endpoint (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:9464/healthz")]
    url: String,
}

#[derive(Args)]
struct RunArgs {
    /// Configuration file (YAML; see `medic config --print-defaults`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Rule files or directories (default: the config's, else ./rules if present, else the
    /// built-in rules). Reloaded on SIGHUP and when a file changes.
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// State directory for read positions and the incident log [default: the config's].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Window worker threads [default: the config's].
    #[arg(long)]
    workers: Option<usize>,
}

#[derive(Args)]
struct TapArgs {
    /// Configuration file (YAML): its `sources` section says what to read.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Resume from and save read positions in this directory. Without it, tap starts each
    /// time from the look-back and saves nothing.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Exit after this many records.
    #[arg(long)]
    limit: Option<u64>,
    /// Print only the summary on stderr (lines/s, MiB/s), not the records.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct ConfigArgs {
    /// Print the full default configuration, with comments.
    #[arg(long, conflicts_with = "check")]
    print_defaults: bool,
    /// Check a configuration file (and the rules it names); exits 1 on errors.
    #[arg(long)]
    check: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct InputArgs {
    /// Input format [default: auto, or the config file's].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// LogPAI-style header format, e.g. '<Date> <Time> <Level> <Component>: <Content>'.
    #[arg(long)]
    log_format: Option<String>,
    /// Cut lines longer than this many bytes (counted) [default: 262144].
    #[arg(long)]
    max_line_bytes: Option<usize>,
}

impl InputArgs {
    /// The parse settings: the configuration's, with these flags on top.
    fn parse_config(&self, base: &ParseConfig, multiline: bool) -> ParseConfig {
        let mut cfg = base.clone();
        if let Some(f) = self.format {
            cfg.format = f;
        }
        if let Some(l) = &self.log_format {
            cfg.log_format = Some(l.clone());
        }
        if let Some(m) = self.max_line_bytes {
            cfg.max_line_bytes = m;
        }
        cfg.multiline.enabled &= multiline;
        cfg
    }
}

/// The configuration, and the rules from `--rules` if given, else the configuration's.
fn load_config_and_rules(config: Option<&Path>, rules: &[PathBuf]) -> Result<(Config, RuleSet)> {
    let config = load_config(config)?;
    let rules = load_rules(if rules.is_empty() {
        &config.rules
    } else {
        rules
    })?;
    Ok((config, rules))
}

/// The configuration file, or the defaults, with environment overrides applied
/// (`medic config --print-defaults` lists them).
fn load_config(path: Option<&Path>) -> Result<Config> {
    let mut c = match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    c.apply_env(|k| std::env::var(k).ok())?;
    Ok(c)
}

/// How `replay` prints.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// One JSON object per incident notification.
    Json,
    /// A readable table of incident notifications.
    Table,
    /// One JSON object per rule hit, before windowing (for testing rules).
    Hits,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Configuration file (YAML; see `medic config --print-defaults`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// What to print.
    #[arg(long, value_enum, default_value_t = Output::Json)]
    output: Output,
    /// Window worker threads (files, or blocks of one file, are shared among them)
    /// [default: 1, or the config file's].
    #[arg(long)]
    workers: Option<usize>,
    /// Rule files or directories (default: ./rules if present, else the built-in rules).
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// Do not join multiline events.
    #[arg(long)]
    no_multiline: bool,
    /// Send incidents through classification to the configured ticket sinks, as
    /// `medic run` does, keeping state (tickets, outbox, classification cache) in the
    /// state directory. Replaying the same input again sends nothing twice.
    #[arg(long)]
    tickets: bool,
    /// State directory for --tickets [default: the config's].
    #[arg(long, requires = "tickets")]
    state_dir: Option<PathBuf>,
    /// How long to wait at the end for the outbox to drain; what is left stays queued for
    /// the next run.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    drain_timeout: std::time::Duration,
    /// Files to read ('-' for stdin).
    #[arg(required = true)]
    files: Vec<String>,
}

#[derive(Args)]
struct TemplatesArgs {
    #[command(flatten)]
    input: InputArgs,
    /// The file to mine ('-' for stdin).
    file: String,
}

#[derive(Args)]
struct CheckRulesArgs {
    /// Rule files or directories (default: ./rules).
    paths: Vec<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Configuration file (YAML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The corpus to read.
    #[arg(long)]
    input_file: Option<PathBuf>,
    /// The corpus to read (same as --input-file).
    #[arg(long = "input", conflicts_with = "input_file")]
    input_path: Option<PathBuf>,
    /// Rule files or directories (default: ./rules if present, else the built-in rules).
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// Passes per stage; the fastest is kept.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Worker counts to run the whole pipeline with (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    workers: Vec<usize>,
    /// Print the report as one JSON object on the last line.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEDIC_LOG")
                .unwrap_or_else(|_| "warn,chromiumoxide=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(a) => replay(a),
        Command::Templates(a) => templates(a),
        Command::CheckRules(a) => check_rules(a),
        Command::Bench(a) => bench(a),
        Command::Config(a) => config_cmd(a),
        Command::Run(a) => live_cmd::run(a),
        Command::Tap(a) => live_cmd::tap(a),
        Command::CheckFlows(a) => qa_cmd::check_flows(a),
        Command::Qa(c) => qa_cmd::qa(c),
        Command::Healthcheck(a) => healthcheck(&a.url),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("medic: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `medic healthcheck`: one HTTP/1.1 GET with a 2-second timeout; 200 is healthy.
fn healthcheck(url: &str) -> Result<ExitCode> {
    use std::io::Read;
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("{url}: only http:// URLs are supported"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {host}"))?;
    let timeout = std::time::Duration::from_secs(2);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {host}"))?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    let ok = line.split_whitespace().nth(1) == Some("200");
    if !ok {
        eprintln!(
            "medic healthcheck: {url}: {}",
            line.lines().next().unwrap_or("no answer")
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Load rules from paths, `./rules`, or the built-in set; errors are printed located.
fn load_rules(paths: &[PathBuf]) -> Result<RuleSet> {
    let result = if !paths.is_empty() {
        detect::load(paths)
    } else if Path::new("rules").is_dir() {
        detect::load(&[PathBuf::from("rules")])
    } else {
        detect::load_embedded()
    };
    result.map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::anyhow!("{} error(s) in rule files", errors.len())
    })
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    medic::event::duration::parse(s)
}

fn replay(a: ReplayArgs) -> Result<ExitCode> {
    let (mut config, rules) = load_config_and_rules(a.config.as_deref(), &a.rules)?;
    if let Some(d) = &a.state_dir {
        config.state_dir = d.clone();
    }
    let tickets = if a.tickets {
        let t = medic::pipeline::tickets::Tickets::open(
            &config.state_dir,
            &config.escalate,
            &config.tickets,
        )
        .context("cannot start the ticket path")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tasks = t.spawn(rt.handle(), stopped);
        Some((t, rt, stop, tasks))
    } else {
        None
    };
    let parse = a.input.parse_config(&config.parse, !a.no_multiline);
    if a.output == Output::Hits {
        return replay_hits(&a, &parse, &config.fingerprint, &rules);
    }
    let mut window = config.window.clone();
    if let Some(w) = a.workers {
        window.workers = w;
    }
    window.workers = window.workers.max(1);
    // A progress bar on stderr when it is a terminal: bytes, lines/s, incidents so far.
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| std::sync::Arc::new(medic::pipeline::Progress::default()));
    let total_bytes: u64 = a
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok().map(|m| m.len()))
        .sum();
    let cfg = ReplayConfig {
        parse,
        miner: config.fingerprint.clone(),
        window,
        progress: progress.clone(),
    };
    let (tx, rx) = std::sync::mpsc::channel::<Incident>();
    let tx = std::sync::Mutex::new(tx);
    let files = a.files.clone();
    let rules = std::sync::Arc::new(rules);
    let worker = std::thread::spawn(move || {
        medic::pipeline::replay(files, cfg, rules, move |inc| {
            // The receiver only goes away when stdout is closed; nothing to do then.
            if let Ok(t) = tx.lock() {
                t.send(inc).ok();
            }
        })
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut ids = std::collections::HashSet::new();
    if a.output == Output::Table {
        writeln!(
            out,
            "{:<9} {:<8} {:>7} {:<16} {:<20} TEMPLATE",
            "STATE", "SEVERITY", "COUNT", "ID", "SERVICE"
        )?;
    }
    let mut broken_pipe = false;
    let bar = progress.as_ref().map(|_| {
        let bar = indicatif::ProgressBar::new(total_bytes);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} ({bytes_per_sec}) {wide_bar} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let started = std::time::Instant::now();
    loop {
        let inc = match rx.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(inc) => Some(inc),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let (Some(bar), Some(p)) = (&bar, &progress) {
            let lines = p.lines.load(std::sync::atomic::Ordering::Relaxed);
            bar.set_position(p.bytes.load(std::sync::atomic::Ordering::Relaxed));
            bar.set_message(format!(
                "{:.0} lines/s, {} incidents",
                lines as f64 / started.elapsed().as_secs_f64().max(1e-3),
                ids.len()
            ));
        }
        let Some(inc) = inc else { continue };
        ids.insert(inc.id.clone());
        if let Some((t, ..)) = &tickets {
            t.submit(&inc);
        }
        if broken_pipe {
            continue;
        }
        let written = match a.output {
            Output::Table => writeln!(
                out,
                "{:<9} {:<8} {:>7} {:<16} {:<20} {}",
                format!("{:?}", inc.state).to_lowercase(),
                inc.severity.as_str(),
                inc.count,
                inc.id,
                truncate(&inc.key.service, 20),
                truncate(&inc.template, 100)
            ),
            _ => writeln!(out, "{}", serde_json::to_string(&inc)?),
        };
        if let Err(e) = written {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(e.into());
            }
            broken_pipe = true;
        }
    }
    out.flush().ok();
    let summary = worker
        .join()
        .map_err(|_| anyhow::anyhow!("the replay thread panicked"))??;
    eprintln!(
        "medic replay: {} lines, {} events, {} hits, {} templates, {} incidents ({} notifications), {} multiline joins, late {}, evicted {}, inhibited {}, fallbacks: {}",
        summary.lines,
        summary.events,
        summary.hits,
        summary.templates,
        ids.len(),
        summary.notifications,
        summary.multiline_joins,
        summary.late,
        summary.evicted,
        summary.inhibited,
        fallback_summary(&summary.fallbacks)
    );
    if let Some((t, rt, stop, tasks)) = tickets {
        let waiting = rt.block_on(t.drain(a.drain_timeout));
        let _ = stop.send(true);
        for task in tasks {
            let _ = rt.block_on(task);
        }
        let depths = t.store().depths()?;
        let dead: u64 = depths.iter().map(|(_, d)| d.dead).sum();
        let open = t.store().tickets(Some("open"), 1_000_000)?.len();
        let all = t.store().tickets(None, 1_000_000)?.len();
        eprintln!(
            "medic replay: tickets via {} ({}): {} in the store ({} open), {} action(s) still queued, {} rejected",
            t.sink_names().join(", "),
            t.classifier(),
            all,
            open,
            waiting,
            dead
        );
        if waiting > 0 || dead > 0 {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `invalid_utf8=2 truncated=1`, or `none`: counts in [`Fallback::ALL`] order.
fn fallback_summary(counts: &[u64]) -> String {
    let parts: Vec<String> = Fallback::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(f, n)| format!("{}={n}", f.as_str()))
        .collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(" ")
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

/// `replay --output hits`: every rule hit before windowing, single-threaded, in order.
fn replay_hits(
    a: &ReplayArgs,
    parse: &ParseConfig,
    miner: &MinerConfig,
    rules: &RuleSet,
) -> Result<ExitCode> {
    // Every event is fingerprinted, as in the window path, so merges are the same.
    let mut core = Core::new(parse, miner.clone(), rules)?.fingerprint_all(true);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut lines = 0;
    let mut write_err = None;
    for file in &a.files {
        let input = medic::source::open(file)?;
        let origin = Origin {
            kind: if file == "-" { "stdin" } else { "replay" },
            name: file.as_str().into(),
            ..Origin::default()
        };
        lines += core
            .run(input, &origin, |seen| {
                for (from, to) in seen.merges {
                    // Incidents follow template merges; show them so hits can be grouped
                    // the way the window stage groups them.
                    let rec =
                        serde_json::json!({"merge": {"from": from, "to": to}, "line": seen.line});
                    if let Err(e) = writeln!(out, "{rec}") {
                        write_err = Some(e);
                    }
                }
                if !seen.detection.is_hit() || write_err.is_some() {
                    return;
                }
                let ev = seen.event;
                let Some(fp) = seen.fingerprint else { return };
                let ids: Vec<&str> = seen
                    .detection
                    .rules
                    .iter()
                    .map(|r| rules.rule(*r).id())
                    .collect();
                let rec = serde_json::json!({
                    "source": file,
                    "line": seen.line,
                    "time_ns": ev.time_ns,
                    "stream": ev.stream,
                    "level": ev.level,
                    "severity": seen.detection.severity,
                    "rules": ids,
                    "fingerprint": fp.fingerprint,
                    "template": seen.fingerprinter.template(ev, &fp),
                    "message": ev.message(),
                    "lines": ev.lines,
                });
                if let Err(e) = writeln!(out, "{rec}") {
                    write_err = Some(e);
                }
            })
            .with_context(|| format!("reading {file}"))?;
    }
    if let Some(e) = write_err
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    out.flush().ok();
    let ps = core.parser().stats();
    eprintln!(
        "medic replay: {lines} lines, {} events, {} hits, {} templates, {} multiline joins, fallbacks: {}",
        ps.events,
        core.detector().stats().hits,
        core.fingerprinter().miner().stats().created,
        ps.multiline_joins,
        fallback_summary(&ps.fallbacks)
    );
    Ok(ExitCode::SUCCESS)
}

/// The per-line record of `medic templates`: a mined cluster resolved at the end, or a
/// fixed fingerprint (stack traces).
enum LineTemplate {
    Cluster(ClusterId),
    Fixed(Fingerprint, String),
}

fn templates(a: TemplatesArgs) -> Result<ExitCode> {
    // One output per input line: no multiline joining.
    let parse = a.input.parse_config(&ParseConfig::default(), false);
    let rules = RuleSet::compile(Vec::new()).map_err(|_| anyhow::anyhow!("empty rule set"))?;
    let miner = MinerConfig {
        // The whole file is one batch; keep every template to report it at the end.
        max_templates: usize::MAX / 8,
        ..MinerConfig::default()
    };
    let mut core = Core::new(&parse, miner, &rules)?;
    let input = medic::source::open(&a.file)?;
    let origin = Origin {
        kind: "replay",
        name: a.file.as_str().into(),
        ..Origin::default()
    };
    let mut per_line = Vec::new();
    core.run(input, &origin, |seen| {
        let Some(fp) = seen.fingerprint else { return };
        per_line.push(match fp.cluster {
            Some(c) => LineTemplate::Cluster(c),
            None => {
                LineTemplate::Fixed(fp.fingerprint, seen.fingerprinter.template(seen.event, &fp))
            }
        });
    })
    .with_context(|| format!("reading {}", a.file))?;
    let miner = core.fingerprinter().miner();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for lt in &per_line {
        let (fp, template) = match lt {
            LineTemplate::Cluster(c) => match miner.template_of(*c) {
                Some((t, fp)) => (fp, t),
                None => bail!("a template was evicted before the end of input"),
            },
            LineTemplate::Fixed(fp, t) => (*fp, t.as_str()),
        };
        let rec = serde_json::json!({"fingerprint": fp, "template": template});
        writeln!(out, "{rec}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn check_rules(a: CheckRulesArgs) -> Result<ExitCode> {
    let paths = if a.paths.is_empty() {
        vec![PathBuf::from("rules")]
    } else {
        a.paths
    };
    // Like promtool: report every error, and still run the examples of the valid rules.
    let (set, errors) = detect::load_lenient(&paths);
    for e in &errors {
        println!("{e}");
    }
    let report = set
        .as_ref()
        .map(detect::check::run_examples)
        .unwrap_or_default();
    for f in &report.failures {
        println!("{f}");
    }
    if errors.is_empty() && report.failures.is_empty() {
        let set = set.as_ref().expect("no errors means a rule set");
        println!(
            "SUCCESS: {} rules in {} files, {} examples passed ({} literals in one automaton, {} regex-only rules)",
            report.rules,
            set.files().len(),
            report.examples,
            set.literal_count(),
            set.regex_only_count()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "FAILED: {} error(s), {} of {} examples failed",
        errors.len(),
        report.failures.len(),
        report.examples
    );
    Ok(ExitCode::from(1))
}

fn bench(a: BenchArgs) -> Result<ExitCode> {
    let Some(input) = a.input_path.or(a.input_file) else {
        bail!("--input FILE is required");
    };
    let (config, rules) = load_config_and_rules(a.config.as_deref(), &a.rules)?;
    let parse = a.input.parse_config(&config.parse, true);
    let mut workers = a.workers.clone();
    workers.retain(|w| *w > 0);
    if workers.first() != Some(&1) {
        workers.insert(0, 1);
    }
    workers.dedup();
    let report = medic::bench::run(
        &input,
        &parse,
        &config.fingerprint,
        &config.window,
        std::sync::Arc::new(rules),
        a.repeat,
        &workers,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
    .with_context(|| format!("benchmarking {}", input.display()))?;
    let mib = report.bytes as f64 / (1024.0 * 1024.0);
    println!(
        "input: {} lines, {:.1} MiB ({})",
        report.lines,
        mib,
        input.display()
    );
    println!(
        "{:<12} {:>14} {:>10} {:>9}",
        "stage", "lines/s", "MiB/s", "seconds"
    );
    for (name, s) in &report.stages {
        println!(
            "{name:<12} {:>14.0} {:>10.1} {:>9.3}",
            s.lines_per_sec, s.mib_per_sec, s.seconds
        );
    }
    for name in &report.unmeasured {
        println!(
            "{name:<12} {:>14}  (its pass was no slower than the one before; try --repeat)",
            "noise"
        );
    }
    println!(
        "{:<12} {:>14.0} {:>10.1} {:>9.3}  (read to fingerprint in one pass)",
        "core", report.core.lines_per_sec, report.core.mib_per_sec, report.core.seconds
    );
    println!(
        "{:<12} {:>14.0} {:>10.1} {:>9.3}",
        "end-to-end", report.lines_per_sec, report.mib_per_sec, report.seconds
    );
    for (w, s) in &report.workers {
        println!(
            "{:<12} {:>14.0} {:>10.1} {:>9.3}",
            format!("{w} worker{}", if *w == 1 { "" } else { "s" }),
            s.lines_per_sec,
            s.mib_per_sec,
            s.seconds
        );
    }
    println!(
        "incidents {} ({:.0}/s), notifications {}",
        report.incidents, report.incidents_per_sec, report.notifications
    );
    println!(
        "events {}  hits {}  templates {}  fallbacks {}  peak RSS {:.1} MiB",
        report.events,
        report.hits,
        report.templates,
        report.fallbacks,
        report.peak_rss_bytes as f64 / (1024.0 * 1024.0)
    );
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn config_cmd(a: ConfigArgs) -> Result<ExitCode> {
    if let Some(path) = a.check {
        let config = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                println!("{e}");
                return Ok(ExitCode::from(1));
            }
        };
        if let Err(e) = medic::parse::Parser::new(&config.parse) {
            println!("{}: parse: {e}", path.display());
            return Ok(ExitCode::from(1));
        }
        if !config.rules.is_empty()
            && let Err(errors) = detect::load(&config.rules)
        {
            for e in &errors {
                println!("{e}");
            }
            return Ok(ExitCode::from(1));
        }
        println!("SUCCESS: {} is valid", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if a.print_defaults {
        print!("{}", medic::config::DEFAULTS_YAML);
        return Ok(ExitCode::SUCCESS);
    }
    bail!("say --print-defaults or --check FILE")
}
