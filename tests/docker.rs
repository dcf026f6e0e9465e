//! The Docker source against the machine's real engine: no loss and no duplicates across
//! medic and container restarts, dynamic containers, selectors, Docker's split lines, the
//! json-file tail, reconnection through a proxy, and `medic run` end to end.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::docker::{Container, Medic, Out, Proxy, image, serial};

fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write config");
    path
}

/// A tap/run configuration reading the containers named `<prefix>-*` only.
fn docker_config(dir: &Path, prefix: &str, extra: &str) -> PathBuf {
    write_config(
        dir,
        "medic.yaml",
        &format!(
            "state_dir: {state}\nsources:\n  checkpoint_interval: 500ms\n  docker:\n    include: [\"{prefix}-*\"]\n    reconnect_max: 1s\n{extra}",
            state = dir.join("state").display()
        ),
    )
}

fn records(out: &[Out]) -> Vec<Value> {
    out.iter()
        .map(|o| serde_json::from_str(&o.line).unwrap_or_else(|e| panic!("{e}: {}", o.line)))
        .collect()
}

fn messages(out: &[Out]) -> Vec<String> {
    records(out)
        .iter()
        .map(|r| r["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn tap(config: &Path, state: &Path) -> Medic {
    tap_with(config, state, &[])
}

/// `medic tap` with its state directory and extra environment, once it is connected.
fn tap_with(config: &Path, state: &Path, env: &[(&str, &str)]) -> Medic {
    let m = Medic::spawn(
        &[
            "tap",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--state-dir",
            state.to_str().expect("utf-8 path"),
        ],
        env,
    );
    m.wait_stderr(20, "connected to the docker engine");
    m
}

/// loggen marks its stderr lines; the record's `stream` must say the same.
fn assert_stream_kept(r: &Value) {
    let msg = r["message"].as_str().unwrap_or_default();
    let want = if msg.ends_with(" stderr") {
        "stderr"
    } else {
        "stdout"
    };
    assert_eq!(r["stream"], want, "{r}");
}

fn wait_until(secs: u64, what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn counts(lines: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for l in lines {
        *m.entry(l.as_str()).or_insert(0) += 1;
    }
    m
}

#[test]
fn no_line_lost_or_read_twice_across_restarts() {
    let _serial = serial();
    image();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let p = format!("mdt-restart-{}", std::process::id());
    let config = docker_config(dir.path(), &p, "");
    // 60 lines/s each for 10 s: stdout with every 3rd line on stderr, a TTY, and stdout
    // with every 2nd line on stderr.
    let a = Container::start(&format!("{p}-a"), &[], &["count", "A", "600", "60", "3"]);
    let b = Container::start(&format!("{p}-b"), &["-t"], &["count", "B", "600", "60"]);
    let c = Container::start(&format!("{p}-c"), &[], &["count", "C", "600", "60", "2"]);

    // Run 1, stopped gracefully.
    let m = tap(&config, &state);
    std::thread::sleep(Duration::from_secs(2));
    let (run1, _) = m.terminate();
    // Run 2: container `a` restarts under it (a new boot prints 600 more), then medic is
    // killed with SIGKILL.
    let m = tap(&config, &state);
    std::thread::sleep(Duration::from_millis(1500));
    a.docker(&["restart", "-t", "0"]);
    std::thread::sleep(Duration::from_millis(1000));
    let (run2, _) = m.kill9();
    // Run 3: container `c` is paused and resumed; then everything is drained.
    let m = tap(&config, &state);
    c.docker(&["pause"]);
    std::thread::sleep(Duration::from_secs(1));
    c.docker(&["unpause"]);
    let truth = |x: &Container, prefix: &str| support::docker::numbered(x.logs(), prefix);
    wait_until(60, "every container to finish", || {
        let boots: HashSet<String> = truth(&a, "A")
            .iter()
            .filter_map(|l| l.split(' ').nth(1).map(str::to_string))
            .collect();
        boots.len() == 2
            && truth(&a, "A").iter().any(|l| l.contains(" 599 "))
            && truth(&b, "B").len() == 600
            && truth(&c, "C").len() == 600
    });
    let expected: Vec<String> = [truth(&a, "A"), truth(&b, "B"), truth(&c, "C")].concat();
    m.wait_for(30, "all lines", |out| {
        let got: HashSet<String> = messages(out).into_iter().collect();
        let before: HashSet<String> = messages(&run1).into_iter().chain(messages(&run2)).collect();
        expected
            .iter()
            .all(|l| got.contains(l) || before.contains(l))
    });
    std::thread::sleep(Duration::from_millis(500));
    let (run3, _) = m.terminate();

    let (m1, m2, m3) = (messages(&run1), messages(&run2), messages(&run3));
    let all: Vec<String> = [m1.clone(), m2.clone(), m3.clone()].concat();
    let seen = counts(&all);
    let missing: Vec<&String> = expected
        .iter()
        .filter(|l| !seen.contains_key(l.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} lines lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        seen.len(),
        expected.len(),
        "only the containers' lines were read"
    );
    // Each run alone reads every line once; a graceful stop repeats nothing.
    for (i, run) in [&m1, &m2, &m3].iter().enumerate() {
        let c = counts(run);
        assert!(c.values().all(|&n| n == 1), "run {} repeated a line", i + 1);
    }
    let s1: HashSet<&String> = m1.iter().collect();
    assert!(
        m2.iter().all(|l| !s1.contains(l)),
        "graceful restart repeated lines"
    );
    assert!(m3.iter().all(|l| !s1.contains(l)));
    // After kill -9, at most the lines of one checkpoint interval (500 ms at 180 lines/s)
    // may be read again; allow the interval plus the tap's output batch.
    let s2: HashSet<&String> = m2.iter().collect();
    let repeated = m3.iter().filter(|l| s2.contains(l)).count();
    assert!(repeated <= 180, "{repeated} lines repeated after kill -9");
    eprintln!(
        "lines: expected {}, run1 {}, run2 {}, run3 {}, repeated after kill -9: {repeated}",
        expected.len(),
        m1.len(),
        m2.len(),
        m3.len()
    );
    // Streams are kept; the TTY's carriage returns are gone.
    let recs: Vec<Value> = [records(&run1), records(&run2), records(&run3)].concat();
    for r in &recs {
        let msg = r["message"].as_str().unwrap_or_default();
        assert_stream_kept(r);
        assert!(!msg.contains('\r'), "{r}");
        assert!(
            r["container"].as_str().is_some_and(|n| n.starts_with(&p)),
            "{r}"
        );
        assert!(
            r["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{r}"
        );
    }
}

#[test]
fn new_containers_are_picked_up_and_excluded_ones_never_read() {
    let _serial = serial();
    image();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = format!("mdt-dyn-{}", std::process::id());
    let config = docker_config(
        dir.path(),
        &p,
        &format!("    exclude: [\"{p}-excluded*\"]\n    exclude_labels: [\"tier=debug\"]\n"),
    );
    let m = tap(&config, &dir.path().join("state"));
    let started = Instant::now();
    let _new = Container::start(&format!("{p}-new"), &[], &["count", "N", "20", "100"]);
    let ready = started.elapsed();
    let _excl = Container::start(&format!("{p}-excluded"), &[], &["count", "X", "20", "100"]);
    let _optout = Container::start(
        &format!("{p}-optout"),
        &["--label", "medic.enable=false"],
        &["count", "O", "20", "100"],
    );
    let _debug = Container::start(
        &format!("{p}-debug"),
        &["--label", "tier=debug"],
        &["count", "D", "20", "100"],
    );
    let _other = Container::start("mdt-not-included", &[], &["count", "Z", "20", "100"]);
    m.wait_for(10, "the new container's lines", |out| {
        messages(out).iter().filter(|l| l.starts_with("N ")).count() == 20
    });
    std::thread::sleep(Duration::from_secs(1));
    let (out, _) = m.terminate();
    let first = out
        .iter()
        .find(|o| o.line.contains("\"N "))
        .expect("a line of the new container");
    let latency = first.at.duration_since(started);
    eprintln!("docker run returned after {ready:?}; first line read after {latency:?}");
    assert!(
        latency <= ready + Duration::from_secs(1),
        "picked up after {latency:?}"
    );
    let msgs = messages(&out);
    assert_eq!(msgs.len(), 20, "only the included container: {msgs:?}");
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", "mdt-not-included"])
        .output();
}

#[test]
fn split_lines_arrive_whole() {
    let _serial = serial();
    image();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = format!("mdt-long-{}", std::process::id());
    let config = docker_config(dir.path(), &p, "");
    // The json-file driver (the default) keeps the 100 KiB line; the local driver keeps
    // raw bytes, so it also shows multi-byte characters cut at the 16 KiB boundary.
    // (json-file itself writes U+FFFD for the halves of a cut character: the engine loses
    // them before any reader sees them.)
    let _j = Container::start(&format!("{p}-json"), &[], &["long"]);
    let _l = Container::start(&format!("{p}-local"), &["--log-driver", "local"], &["long"]);
    let m = tap(&config, &dir.path().join("state"));
    m.wait_for(20, "both containers' lines", |out| {
        messages(out).iter().filter(|l| *l == "long-done").count() == 2
    });
    let (out, _) = m.terminate();
    let mut expected_utf8 = Vec::new();
    for shift in 0..4 {
        let mut line = String::from("long-utf8 ");
        while line.len() < 16 * 1024 - 8 + shift {
            line.push('a');
        }
        while line.len() < 16 * 1024 + 64 {
            line.push_str("é€😀");
        }
        expected_utf8.push(line);
    }
    let long_ascii = format!("long-ascii {}", "x".repeat(100 * 1024));
    let by_container: BTreeMap<String, Vec<String>> =
        records(&out).iter().fold(BTreeMap::new(), |mut m, r| {
            m.entry(r["container"].as_str().unwrap_or_default().to_string())
                .or_default()
                .push(r["message"].as_str().unwrap_or_default().to_string());
            m
        });
    for (name, lines) in &by_container {
        assert_eq!(lines.len(), 6, "{name}: one record per line");
        assert_eq!(lines[0], long_ascii, "{name}: the 100 KiB line");
        assert_eq!(lines[5], "long-done");
    }
    let local = &by_container[&format!("{p}-local")];
    assert_eq!(
        &local[1..5],
        &expected_utf8[..],
        "characters cut at 16 KiB are whole"
    );
    for r in records(&out) {
        assert_eq!(r["truncated"], false);
    }
}

#[test]
fn json_file_tail_mode_resumes_without_loss_or_repeats() {
    let _serial = serial();
    image();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let p = format!("mdt-jsonfile-{}", std::process::id());
    let config = docker_config(dir.path(), &p, "    mode: json_file\n");
    let c = Container::start(&format!("{p}-a"), &[], &["count", "J", "300", "100", "4"]);
    let m = tap(&config, &state);
    std::thread::sleep(Duration::from_millis(1200));
    let (run1, _) = m.terminate();
    let m = tap(&config, &state);
    m.wait_for(20, "the rest of the lines", |out| {
        messages(&run1).len() + messages(out).len() >= 300
    });
    std::thread::sleep(Duration::from_millis(500));
    let (run2, _) = m.terminate();
    let all: Vec<String> = [messages(&run1), messages(&run2)].concat();
    let truth = support::docker::numbered(c.logs(), "J");
    assert_eq!(truth.len(), 300);
    let seen = counts(&all);
    assert!(!messages(&run1).is_empty() && !messages(&run2).is_empty());
    assert_eq!(all.len(), 300, "every line once");
    assert!(truth.iter().all(|l| seen.get(l.as_str()) == Some(&1)));
    for r in [records(&run1), records(&run2)].concat() {
        assert_stream_kept(&r);
    }
}

#[test]
fn reconnects_when_the_engine_goes_away() {
    let _serial = serial();
    image();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = format!("mdt-proxy-{}", std::process::id());
    let sock = dir.path().join("docker.sock");
    let config = docker_config(dir.path(), &p, "");
    let c = Container::start(&format!("{p}-a"), &[], &["count", "P", "400", "50", "5"]);
    let proxy = Proxy::start(&sock);
    let host = format!("unix://{}", sock.display());
    let m = tap_with(
        &config,
        &dir.path().join("state"),
        &[("DOCKER_HOST", &host)],
    );
    std::thread::sleep(Duration::from_millis(1500));
    proxy.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let lost_at = messages(&m.lines()).len();
    let proxy = Proxy::start(&sock);
    wait_until(30, "the container to finish", || {
        support::docker::numbered(c.logs(), "P").len() == 400
    });
    m.wait_for(30, "every line", |out| messages(out).len() >= 400);
    std::thread::sleep(Duration::from_millis(500));
    let (out, err) = m.terminate();
    proxy.kill();
    assert!(err.contains("docker engine lost"), "{err}");
    assert!(
        err.matches("connected to the docker engine").count() >= 2,
        "{err}"
    );
    assert!(
        lost_at < 400,
        "the outage happened while lines were being written"
    );
    let msgs = messages(&out);
    let seen = counts(&msgs);
    let truth = support::docker::numbered(c.logs(), "P");
    assert_eq!(msgs.len(), 400, "no line lost or repeated");
    assert!(truth.iter().all(|l| seen.get(l.as_str()) == Some(&1)));
}

#[test]
fn run_opens_incidents_reloads_rules_and_stops_cleanly() {
    let _serial = serial();
    image();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = format!("mdt-run-{}", std::process::id());
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    let rule = |id: &str, word: &str| {
        format!(
            "rules:\n  - id: {id}\n    description: test rule\n    severity: critical\n    match:\n      any: [\"{word}\"]\n    examples:\n      match: [\"{word} 1\"]\n      no_match: [\"quiet\"]\n"
        )
    };
    std::fs::write(rules.join("a.yaml"), rule("test-kaboom", "KABOOM")).expect("rule");
    let config = docker_config(
        dir.path(),
        &p,
        "window:\n  group_wait: 1s\n  group_interval: 1s\n  new_fingerprint: { enabled: false, warmup: 10m }\n",
    );
    let _k = Container::start(&format!("{p}-k"), &[], &["count", "KABOOM", "100000", "20"]);
    let _z = Container::start(&format!("{p}-z"), &[], &["count", "ZAPPED", "100000", "20"]);
    let incidents = dir.path().join("state/incidents.jsonl");
    let m = Medic::spawn(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8"),
            "--rules",
            rules.to_str().expect("utf-8"),
        ],
        &[],
    );
    let read = || -> Vec<Value> {
        std::fs::read_to_string(&incidents)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let has = |rule: &str, service: &str| {
        read().iter().any(|i| {
            i["rules"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x == rule))
                && i["key"]["service"] == service
        })
    };
    wait_until(30, "an incident for the KABOOM container", || {
        has("test-kaboom", &format!("{p}-k"))
    });
    assert!(!has("test-zapped", &format!("{p}-z")));
    // A new rule file is picked up without a restart.
    std::fs::write(rules.join("b.yaml"), rule("test-zapped", "ZAPPED")).expect("rule");
    wait_until(30, "an incident from the reloaded rules", || {
        has("test-zapped", &format!("{p}-z"))
    });
    // SIGHUP reloads too.
    let pid = m.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill -HUP")
            .success()
    );
    m.wait_stderr(10, "SIGHUP");
    let (_, err) = m.terminate();
    assert!(err.contains("rule file changed"), "{err}");
    let checkpoints = std::fs::read_to_string(dir.path().join("state/checkpoints.json"))
        .expect("checkpoints written at shutdown");
    let v: Value = serde_json::from_str(&checkpoints).expect("valid checkpoint file");
    assert_eq!(v["sources"].as_object().map(|o| o.len()), Some(2), "{v}");
}

/// Over TCP (`DOCKER_HOST=tcp://...`) logs are read through bollard rather than the raw
/// unix-socket reader: the same lines, streams and TTY handling.
#[test]
fn tcp_hosts_read_logs_through_bollard() {
    let _serial = serial();
    image();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = format!("mdt-tcp-{}", std::process::id());
    let config = docker_config(dir.path(), &p, "");
    let _m = Container::start(&format!("{p}-mux"), &[], &["count", "M", "50", "200", "2"]);
    let _t = Container::start(&format!("{p}-tty"), &["-t"], &["count", "T", "50", "200"]);
    let bridge = support::docker::TcpBridge::start();
    let host = format!("tcp://127.0.0.1:{}", bridge.port);
    let m = tap_with(
        &config,
        &dir.path().join("state"),
        &[("DOCKER_HOST", &host)],
    );
    m.wait_for(20, "both containers' lines", |out| {
        messages(out).len() >= 100
    });
    std::thread::sleep(Duration::from_millis(300));
    let (out, _) = m.terminate();
    let msgs = messages(&out);
    assert_eq!(msgs.len(), 100, "{msgs:?}");
    assert_eq!(counts(&msgs).len(), 100, "no line twice");
    for r in records(&out) {
        assert_stream_kept(&r);
        assert!(
            !r["message"].as_str().unwrap_or_default().contains('\r'),
            "{r}"
        );
    }
}
