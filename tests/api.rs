//! `medic run`'s HTTP server: a real Prometheus (from Debian) scrapes `/metrics`, promtool
//! lints it, and the API's token rule holds on a public bind.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A minimal HTTP/1.1 GET: (status, body).
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `medic run` on a tailed file (no Docker), its API on `listen`.
fn medic_run(dir: &Path, listen: &str, env: &[(&str, &str)]) -> Child {
    medic_run_with(dir, listen, env, "")
}

/// The same with extra configuration appended.
fn medic_run_with(dir: &Path, listen: &str, env: &[(&str, &str)], extra: &str) -> Child {
    let log = dir.join("app.log");
    if !log.exists() {
        std::fs::write(&log, "").expect("log");
    }
    let config = dir.join("medic.yaml");
    std::fs::write(
        &config,
        format!(
            "state_dir: {}\napi: {{ listen: \"{listen}\" }}\nsources:\n  docker: {{ enabled: false }}\n  files: [{{ path: {} }}]\n{extra}",
            dir.join("state").display(),
            log.display()
        ),
    )
    .expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medic"));
    cmd.args(["run", "--config", config.to_str().expect("utf-8")])
        .env_remove("MEDIC_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn medic")
}

/// Wait until medic's `/readyz` answers 200.
fn wait_ready(port: u16) {
    wait_for(20, "medic to be ready", || {
        get(port, "/readyz", &[]).filter(|(s, _)| *s == 200)
    });
}

/// Append the example log to the file medic tails.
fn append_fixture(dir: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/app.log");
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("app.log"))
        .expect("log");
    log.write_all(&std::fs::read(fixture).expect("fixture"))
        .expect("append");
}

fn query(port: u16, q: &str) -> Option<f64> {
    let (status, body) = get(port, &format!("/api/v1/query?query={q}"), &[])?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let results = v["data"]["result"].as_array()?;
    let sum: f64 = results
        .iter()
        .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
        .sum();
    (!results.is_empty()).then_some(sum)
}

#[test]
fn prometheus_scrapes_increasing_metrics_and_promtool_finds_no_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _medic = Killed(medic_run(dir.path(), &format!("127.0.0.1:{port}"), &[]));
    wait_ready(port);
    // Keep lines coming, some of them errors, so counters move between scrapes.
    let log = dir.path().join("app.log");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .expect("append");
                for _ in 0..50 {
                    i += 1;
                    let line = if i.is_multiple_of(10) {
                        format!("ERROR request {i} failed: connection refused\n")
                    } else {
                        format!("INFO request {i} served in {}ms\n", i % 97)
                    };
                    f.write_all(line.as_bytes()).expect("write");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let prom_port = free_port();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: medic\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("prometheus config");
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus from Debian's package (apt-get install prometheus)"),
    );
    let first = wait_for(60, "a scrape of medic_lines_read_total", || {
        query(prom_port, "medic_lines_read_total").filter(|v| *v > 0.0)
    });
    let later = wait_for(30, "medic_lines_read_total to increase", || {
        query(prom_port, "medic_lines_read_total").filter(|v| *v > first)
    });
    assert!(later > first);
    for q in [
        "medic_bytes_read_total",
        "medic_events_total",
        "medic_rule_hits_total",
        "medic_templates",
        "medic_checkpoint_age_seconds",
        "medic_source_lag_seconds",
        "medic_stage_duration_seconds_count",
        "medic_outbox_depth",
        "up%7Bjob%3D%22medic%22%7D",
    ] {
        wait_for(30, q, || query(prom_port, q));
    }
    assert_eq!(query(prom_port, "up%7Bjob%3D%22medic%22%7D"), Some(1.0));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.join();
    // promtool lints the exposition itself.
    let (_, metrics) = get(port, "/metrics", &[]).expect("metrics");
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool from Debian's prometheus package");
    lint.stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("write");
    let out = lint.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

#[test]
fn a_public_bind_needs_a_token_and_the_api_checks_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let out = medic_run(dir.path(), &format!("0.0.0.0:{port}"), &[])
        .wait_with_output()
        .expect("medic run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("refusing to serve the API on 0.0.0.0") && err.contains("MEDIC_API_TOKEN"),
        "{err}"
    );

    let _medic = Killed(medic_run(
        dir.path(),
        &format!("0.0.0.0:{port}"),
        &[("MEDIC_API_TOKEN", "s3cret")],
    ));
    wait_for(20, "medic to be ready", || {
        get(port, "/healthz", &[]).filter(|(s, _)| *s == 200)
    });
    let (status, body) = get(port, "/api/sources", &[]).expect("response");
    assert_eq!(status, 401);
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(v["code"], "unauthorized");
    let (status, _) = get(port, "/api/sources", &[("Authorization", "Bearer wrong")]).expect("r");
    assert_eq!(status, 401);
    let (status, body) =
        get(port, "/api/sources", &[("Authorization", "Bearer s3cret")]).expect("response");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(v["sources"].is_array(), "{v}");
    let (status, body) = get(
        port,
        "/api/nothing-here",
        &[("Authorization", "Bearer s3cret")],
    )
    .expect("r");
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");
    // Metrics and health need no token.
    assert_eq!(get(port, "/metrics", &[]).map(|r| r.0), Some(200));
    assert_eq!(get(port, "/readyz", &[]).map(|r| r.0), Some(200));
}

#[test]
fn incidents_rules_and_live_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _medic = Killed(medic_run_with(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &[],
        "window: { group_wait: 1s, group_interval: 1s }\n",
    ));
    wait_ready(port);
    // Subscribe before anything happens: notifications must arrive on the stream.
    let mut sse = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sse.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .expect("subscribe");
    sse.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    append_fixture(dir.path());
    let mut seen = String::new();
    wait_for(20, "an incident on /api/events", || {
        let mut buf = [0u8; 4096];
        if let Ok(n) = sse.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen.contains("event: incident").then_some(())
    });
    assert!(seen.contains("text/event-stream"), "{seen}");

    let list = |query: &str| -> serde_json::Value {
        let (status, body) = get(port, &format!("/api/incidents{query}"), &[]).expect("r");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let all = list("");
    let incidents = all["incidents"].as_array().expect("list");
    assert!(!incidents.is_empty());
    assert!(
        incidents.iter().all(|i| i.get("samples").is_none()),
        "the list has no samples"
    );
    let critical = list("?severity=critical&state=open");
    assert!(
        critical["incidents"]
            .as_array()
            .expect("list")
            .iter()
            .all(|i| i["severity"] == "critical" && i["state"] == "open")
    );
    assert_eq!(
        list("?service=nobody")["incidents"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(
        list("?limit=1")["incidents"].as_array().map(Vec::len),
        Some(1)
    );
    let id = incidents[0]["id"].as_str().expect("id");
    let (status, body) = get(port, &format!("/api/incidents/{id}"), &[]).expect("r");
    assert_eq!(status, 200);
    let one: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        !one["samples"].as_array().expect("samples").is_empty(),
        "{one}"
    );
    let (status, body) = get(port, "/api/incidents/0000", &[]).expect("r");
    assert_eq!(
        (status, body.contains("\"code\":\"not_found\"")),
        (404, true)
    );
    for bad in [
        "?state=sleeping",
        "?severity=apocalyptic",
        "?limit=0",
        "?limit=many",
        "?since=yesterday",
        "?colour=red",
    ] {
        let (status, body) = get(port, &format!("/api/incidents{bad}"), &[]).expect("r");
        assert_eq!(status, 400, "{bad}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(v["code"], "bad_request", "{bad}");
    }
    let (status, body) = get(port, "/api/rules", &[]).expect("r");
    assert_eq!(status, 200);
    let rules: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let refused = rules["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["id"] == "connection-refused")
        .expect("a shipped rule");
    assert_eq!(refused["hits"], 2, "{refused}");
    let (status, body) = get(port, "/api/status", &[]).expect("r");
    assert_eq!(status, 200);
    let st: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let monitor = &st["modules"][0];
    assert_eq!(monitor["name"], "log_monitor");
    assert_eq!(monitor["state"], "active", "{st}");
    assert_eq!(monitor["records"], 33, "{st}");
    let (status, page) = get(port, "/", &[]).expect("r");
    assert_eq!(status, 200);
    assert!(
        page.contains("EventSource") && page.contains("<main>"),
        "the dashboard"
    );
    // Top templates are published every few seconds.
    let top = wait_for(20, "top templates", || {
        let (status, body) = get(port, "/api/templates?by=count&limit=3", &[])?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200 && v["templates"].as_array().is_some_and(|t| !t.is_empty())).then_some(v)
    });
    let t = top["templates"].as_array().expect("list");
    assert!(t.len() <= 3);
    assert!(
        t.windows(2)
            .all(|w| w[0]["count"].as_u64() >= w[1]["count"].as_u64())
    );
    assert!(
        t[0]["template"].is_string() && t[0]["trend"].is_string(),
        "{top}"
    );
    assert_eq!(
        get(port, "/api/templates?by=rate", &[]).map(|r| r.0),
        Some(200)
    );
    for bad in ["?by=size", "?limit=0", "?x=1"] {
        let (status, body) = get(port, &format!("/api/templates{bad}"), &[]).expect("r");
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("bad_request"), "{body}");
    }

    // Every incident becomes a ticket in the embedded store, announced on the stream.
    wait_for(20, "a ticket on /api/events", || {
        let mut buf = [0u8; 4096];
        if let Ok(n) = sse.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen.contains("event: ticket").then_some(())
    });
    let tickets = wait_for(20, "one ticket per incident", || {
        let (status, body) = get(port, "/api/tickets", &[])?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let n = v["tickets"].as_array()?.len();
        (status == 200 && n == list("")["incidents"].as_array()?.len()).then_some(v)
    });
    let first = &tickets["tickets"][0];
    let key = first["key"].as_str().expect("key");
    assert!(key.starts_with("MEDIC-"), "{first}");
    assert!(
        first["labels"]
            .as_array()
            .expect("labels")
            .iter()
            .any(|l| l == "AI-Fix")
    );
    let (status, body) = get(port, &format!("/api/tickets/{key}"), &[]).expect("r");
    assert_eq!(status, 200, "{body}");
    let one: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(one["history"][0]["kind"], "created", "{one}");
    assert!(
        one["body"]
            .as_str()
            .is_some_and(|b| b.contains("### Samples"))
    );
    let (status, body) = get(port, "/api/tickets/NOPE-1", &[]).expect("r");
    assert_eq!(
        (status, body.contains("\"code\":\"not_found\"")),
        (404, true)
    );
    for bad in ["?status=sleeping", "?limit=0", "?x=1"] {
        let (status, body) = get(port, &format!("/api/tickets{bad}"), &[]).expect("r");
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, body) = get(port, "/api/status", &[]).expect("r");
    let st: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let classifier = &st["modules"][1];
    assert_eq!(classifier["name"], "classifier");
    assert_eq!(classifier["classifier"], "rules-1", "{st}");
    assert_eq!(classifier["sinks"][0], "store", "{st}");
    let (_, metrics) = get(port, "/metrics", &[]).expect("metrics");
    for m in [
        "medic_ticket_actions_total{sink=\"store\",action=\"create\",outcome=\"ok\"}",
        "medic_classifications_total{by=\"rules\"}",
        "medic_outbox_depth{sink=\"store\",state=\"pending\"}",
        "medic_window_evictions_total 0",
        "medic_incident_notifications_inhibited_total 0",
    ] {
        assert!(metrics.contains(m), "{m} missing from /metrics");
    }
}

/// The dashboard in real headless Chromium: an incident that opens after the page loaded
/// appears through the live stream, without a reload; the screenshot is kept under
/// target/artifacts/.
#[test]
fn the_dashboard_shows_a_new_incident_live_in_chromium() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _medic = Killed(medic_run_with(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &[],
        "window: { group_wait: 1s, group_interval: 1s }\n",
    ));
    wait_ready(port);
    let mut browser = support::cdp::Browser::start(1280, 800);
    let page = browser.open(&format!("http://127.0.0.1:{port}/"));
    browser.wait_true(
        &page,
        "document.getElementById('status')?.textContent === 'live'",
        20,
    );
    assert_eq!(
        browser.eval(&page, "document.querySelectorAll('tr[data-id]').length"),
        serde_json::json!(0)
    );
    // A mark on this page load: a reload would drop it.
    browser.eval(&page, "window.medicMark = 42; 42");
    append_fixture(dir.path());
    browser.wait_true(
        &page,
        "document.querySelectorAll('tr[data-id]').length > 0",
        30,
    );
    assert_eq!(
        browser.eval(&page, "window.medicMark"),
        serde_json::json!(42),
        "no reload"
    );
    let text = browser.eval(&page, "document.getElementById('incidents').textContent");
    assert!(
        text.as_str()
            .is_some_and(|t| t.contains("connect: connection refused")),
        "{text}"
    );
    // A click opens the detail with its samples.
    browser.eval(
        &page,
        "document.querySelector('tr[data-id] button').click(); true",
    );
    browser.wait_true(&page, "!document.getElementById('detail').hidden && document.querySelectorAll('#detail pre').length > 0", 10);
    browser.wait_true(
        &page,
        "[...document.querySelectorAll('#modules .card')].some((c) => c.textContent.includes('log monitor') && c.textContent.includes('active'))",
        10,
    );
    // Each incident gets its ticket, listed under recent tickets and linked from its row
    // once the ticket event arrives; every row has a count sparkline.
    browser.wait_true(
        &page,
        "document.querySelectorAll('#tickets tr[data-key]').length === document.querySelectorAll('tr[data-id]').length \
         && [...document.querySelectorAll('tr[data-id] td.ticket')].every((td) => /^MEDIC-\\d+$/.test(td.textContent))",
        30,
    );
    assert_eq!(
        browser.eval(
            &page,
            "[...document.querySelectorAll('tr[data-id]')].every((tr) => tr.querySelector('svg.spark polyline'))"
        ),
        serde_json::json!(true)
    );
    browser.eval(
        &page,
        "document.querySelector('#tickets tr[data-key] button').click(); true",
    );
    browser.wait_true(
        &page,
        "!document.getElementById('ticket').hidden && document.querySelector('#ticket pre').textContent.includes('### Samples')",
        10,
    );
    let png = browser.screenshot(&page);
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    std::fs::create_dir_all(&out).expect("artifacts dir");
    std::fs::write(out.join("dashboard.png"), &png).expect("screenshot");

    // A phone: nothing wider than the screen.
    let mut phone = support::cdp::Browser::start(390, 844);
    let page = phone.open(&format!("http://127.0.0.1:{port}/"));
    phone.wait_true(
        &page,
        "document.querySelectorAll('tr[data-id]').length > 0",
        20,
    );
    assert_eq!(
        phone.eval(
            &page,
            "document.documentElement.scrollWidth <= window.innerWidth"
        ),
        serde_json::json!(true),
        "no horizontal scrolling at phone width"
    );
    std::fs::write(out.join("dashboard-phone.png"), phone.screenshot(&page)).expect("screenshot");
}
