//! QA flows in real headless Chromium (Debian's) against the demo shop
//! (`fixtures/demo-app`, built here): all pass with the bugs off; each bug fails the right
//! flow at the right step with a screenshot and the DOM; repeated failures are one
//! incident and one ticket; a passing run resolves them; a missing browser or an
//! unreachable site is an infrastructure incident; `medic qa generate` proposes flows
//! that check and pass; `medic run` schedules flows and reports them.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MEDIC: &str = env!("CARGO_BIN_EXE_medic");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Build the demo app (a workspace member) and return its binary.
fn demo_app_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let st = Command::new(env!("CARGO"))
                .args(["build", "-q", "-p", "demo-app"])
                .current_dir(root())
                .status()
                .expect("cargo");
            assert!(st.success(), "building the demo app failed");
            // This test binary is target/<profile>/deps/qa-<hash>.
            let exe = std::env::current_exe().expect("test exe");
            let dir = exe.parent().and_then(Path::parent).expect("target dir");
            let bin = dir.join("demo-app");
            assert!(bin.exists(), "no demo app at {}", bin.display());
            bin
        })
        .clone()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A demo app on a free loopback port.
struct Demo {
    _child: Killed,
    port: u16,
}

impl Demo {
    fn start(bugs: &str) -> Demo {
        let port = free_port();
        let child = Command::new(demo_app_binary())
            .env("PORT", port.to_string())
            .env("BIND", "127.0.0.1")
            .env("DEMO_BUGS", bugs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("demo app");
        let demo = Demo {
            _child: Killed(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while http(port, "GET", "/healthz").is_none() {
            assert!(Instant::now() < deadline, "the demo app did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        demo
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn bug(&self, name: &str, on: bool) {
        let state = if on { "on" } else { "off" };
        let (status, _) =
            http(self.port, "POST", &format!("/api/bugs/{name}/{state}")).expect("switch");
        assert_eq!(status, 204);
    }
}

/// A minimal HTTP/1.1 request: (status, body).
fn http(port: u16, method: &str, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = raw[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Some((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < eol + 2 + n {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(extra: &str) -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::write(
            env.config(),
            format!(
                "state_dir: {}\nqa:\n  step_timeout: 2s\n  retries: 0\n  jitter: 0s\n{extra}",
                env.state().display()
            ),
        )
        .expect("config");
        env
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("medic.yaml")
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn medic(&self, args: &[&str], url: &str) -> Output {
        Command::new(MEDIC)
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env("DEMO_APP_URL", url)
            .env("MEDIC_LOG", "warn")
            .output()
            .expect("medic")
    }

    fn qa_run(&self, url: &str, extra: &[&str]) -> (i32, String) {
        let flows = root().join("fixtures/demo-app/flows");
        let mut args = vec![
            "qa",
            "run",
            "--tickets",
            "--flows",
            flows.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        let out = self.medic(&args, url);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn incidents(&self) -> Vec<Value> {
        std::fs::read_to_string(self.state().join("incidents.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("incident"))
            .collect()
    }

    fn store(&self) -> medic::sink::Store {
        medic::sink::Store::open(&self.state().join("medic.db"), "MEDIC").expect("store")
    }
}

/// Width and height from a PNG's IHDR, which also proves the file is a PNG.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// (flow, failing step number as printed, element the DOM must contain).
const BUGS: [(&str, &str, &str, &str); 3] = [
    (
        "dead_button",
        "cart",
        "step 3 (assert text \"1\" in #cart-count)",
        "id=\"cart-count\"",
    ),
    (
        "checkout_500",
        "checkout",
        "step 5 (assert text \"Thank you\" in #result)",
        "id=\"result\"",
    ),
    (
        "console_error",
        "home",
        "step 4 (assert no console errors)",
        "id=\"promo\"",
    ),
];

#[test]
fn flows_fail_at_the_right_step_make_one_incident_each_and_resolve_when_fixed() {
    let demo = Demo::start("");
    let env = Env::new("");
    let (code, out) = env.qa_run(&demo.url(), &[]);
    assert_eq!(code, 0, "all flows pass with the bugs off:\n{out}");
    assert_eq!(out.matches("PASS ").count(), 4, "{out}");

    for (bug, _, _, _) in BUGS {
        demo.bug(bug, true);
    }
    let junit = env.path("junit.xml");
    for round in 0..3 {
        let (code, out) = env.qa_run(&demo.url(), &["--junit", junit.to_str().expect("utf-8")]);
        assert_eq!(code, 1, "round {round}: failing flows exit 1:\n{out}");
        for (_, flow, step, _) in BUGS {
            assert!(
                out.contains(&format!("FAIL {flow} at {step}")),
                "round {round}: {flow} should fail at {step}:\n{out}"
            );
        }
        assert!(out.contains("PASS login"), "{out}");
    }
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("tests=\"4\" failures=\"3\""), "{xml}");

    // Artifacts of each failure: a PNG of the viewport and the DOM with the element.
    let artifacts = env.state().join("qa/artifacts");
    for (_, flow, _, element) in BUGS {
        // Failed runs have a report (a passing run may have left a named screenshot).
        let runs: Vec<PathBuf> = std::fs::read_dir(artifacts.join(flow))
            .expect("runs")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.join("report.json").exists())
            .collect();
        assert_eq!(runs.len(), 3, "{flow}: one report per failed run");
        for r in runs {
            let png = std::fs::read(r.join("screenshot.png")).expect("screenshot");
            assert_eq!(png_size(&png), (1280, 800), "{flow}");
            let dom = std::fs::read_to_string(r.join("dom.html")).expect("dom");
            assert!(dom.contains(element), "{flow}: DOM without {element}");
            let report: Value =
                serde_json::from_slice(&std::fs::read(r.join("report.json")).expect("report"))
                    .expect("json");
            assert_eq!(report["passed"], false);
            assert!(
                report["steps"]
                    .as_array()
                    .is_some_and(|s| s.iter().all(|s| s["ms"].is_u64()))
            );
        }
    }
    let checkout = std::fs::read_to_string(
        std::fs::read_dir(artifacts.join("checkout"))
            .expect("runs")
            .next()
            .expect("run")
            .expect("e")
            .path()
            .join("report.json"),
    )
    .expect("report");
    assert!(
        checkout.contains("500 http://127.0.0.1"),
        "the failed request is captured: {checkout}"
    );
    let home = std::fs::read_dir(artifacts.join("home"))
        .expect("runs")
        .filter_map(|e| std::fs::read_to_string(e.expect("e").path().join("report.json")).ok())
        .next()
        .expect("report");
    assert!(
        home.contains("TypeError"),
        "the console error is captured: {home}"
    );

    // Exactly one incident per failing flow and step across the three runs.
    let incidents = env.incidents();
    let mut ids: Vec<(String, String)> = incidents
        .iter()
        .map(|i| {
            (
                i["key"]["service"].as_str().unwrap_or("").to_string(),
                i["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "{ids:?}");
    for (_, flow, _, _) in BUGS {
        let states: Vec<&str> = incidents
            .iter()
            .filter(|i| i["key"]["service"] == format!("qa:{flow}"))
            .map(|i| i["state"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(states, ["open", "updated", "updated"], "{flow}");
    }
    let store = env.store();
    let tickets = store.tickets(None, 100).expect("tickets");
    assert_eq!(tickets.len(), 3, "one ticket per failing flow and step");
    let t = store.ticket(&tickets[0].key).expect("t").expect("t");
    let body = t.body.unwrap_or_default();
    assert!(
        body.contains("Steps to reproduce")
            && body.contains("Expected:")
            && body.contains("Actual:"),
        "{body}"
    );
    assert!(
        body.contains("/api/qa/artifacts/"),
        "artifacts are linked: {body}"
    );

    // Fixed: the next run resolves every incident and ticket.
    for (bug, _, _, _) in BUGS {
        demo.bug(bug, false);
    }
    let (code, out) = env.qa_run(&demo.url(), &[]);
    assert_eq!(code, 0, "{out}");
    let incidents = env.incidents();
    for (_, flow, _, _) in BUGS {
        let last = incidents
            .iter()
            .rev()
            .find(|i| i["key"]["service"] == format!("qa:{flow}"))
            .expect("incident");
        assert_eq!(last["state"], "resolved", "{flow}");
    }
    let open = store.tickets(Some("open"), 100).expect("tickets");
    assert!(open.is_empty(), "tickets resolved: {open:?}");
}

#[test]
fn a_missing_browser_or_an_unreachable_site_is_an_infrastructure_incident() {
    let closed = free_port();
    let env = Env::new("  chromium: /nonexistent/chromium\n");
    let (code, out) = env.qa_run(&format!("http://127.0.0.1:{closed}"), &["home"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL home: cannot start the browser /nonexistent/chromium"),
        "{out}"
    );
    let env2 = Env::new("");
    let (code, out) = env2.qa_run(&format!("http://127.0.0.1:{closed}"), &["home"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL home at step 1 (navigate /): cannot load")
            && out.contains("ERR_CONNECTION_REFUSED"),
        "{out}"
    );
    for e in [&env, &env2] {
        let inc = e.incidents();
        assert_eq!(inc.len(), 1);
        assert!(
            inc[0]["labels"]
                .as_array()
                .expect("labels")
                .iter()
                .any(|l| l == &json!(["error_type", "infrastructure"])),
            "{}",
            inc[0]
        );
        let store = e.store();
        let t = store.tickets(None, 10).expect("tickets");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].error_type, "infrastructure");
    }
    // A bad flow file is a located error, not a crash.
    let bad = env.path("bad.yaml");
    std::fs::write(
        &bad,
        "name: x\npriority: high\nbase_url: http://h\nsteps:\n  - navigate: /\n  - clik: \"#a\"\n",
    )
    .expect("write");
    let out = env.medic(&["check-flows", bad.to_str().expect("utf-8")], "");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:6:") && err.contains("unknown variant `clik`"),
        "{err}"
    );
}

#[test]
fn generated_flows_check_and_pass_on_the_healthy_app() {
    let demo = Demo::start("");
    // An OpenAI-compatible stand-in proposes one good and one broken flow.
    let good = format!(
        "name: buy-a-mug\ndescription: add a mug and see it in the cart\npriority: critical\nbase_url: {}\nevery: 1h\nsteps:\n  - navigate: /products\n  - click: text=Add to cart\n  - assert_text: {{ selector: \"#cart-count\", text: \"1\" }}\n",
        demo.url()
    );
    let answer = format!(
        "```yaml\n{good}---\nname: broken\npriority: urgent\nbase_url: x\nsteps:\n  - navigate: /\n```"
    );
    let llm = support::fake::Fake::start(move |_| {
        support::fake::Reply::json(
            200,
            json!({"choices": [{"message": {"role": "assistant", "content": answer}}], "usage": {"prompt_tokens": 10, "completion_tokens": 10}}),
        )
    });
    let env = Env::new(&format!(
        "escalate:\n  llm:\n    provider: openai\n    model: gen\n    base_url: {}\n",
        llm.url
    ));
    let out_dir = env.path("proposed");
    let out = env.medic(
        &[
            "qa",
            "generate",
            "--url",
            &format!("{}/", demo.url()),
            "--out",
            out_dir.to_str().expect("utf-8"),
        ],
        &demo.url(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("/admin (robots.txt)"),
        "robots.txt is honoured: {err}"
    );
    assert!(err.contains("dropped an invalid LLM proposal"), "{err}");
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("proposals")
        .map(|e| e.expect("e").file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    for want in [
        "smoke-pages.yaml",
        "links-resolve.yaml",
        "llm-buy-a-mug.yaml",
    ] {
        assert!(files.iter().any(|f| f == want), "{want} in {files:?}");
    }
    assert!(
        files.iter().any(|f| f.starts_with("form-login")),
        "{files:?}"
    );
    let prompt = llm.requests()[0].json();
    assert!(
        prompt["messages"][1]["content"]
            .as_str()
            .is_some_and(|c| c.contains("/checkout")),
        "the site map is sent"
    );
    let check = env.medic(&["check-flows", out_dir.to_str().expect("utf-8")], "");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let run = env.medic(
        &["qa", "run", "--flows", out_dir.to_str().expect("utf-8")],
        &demo.url(),
    );
    assert!(
        run.status.success(),
        "proposals pass on the healthy app:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `medic run` with `qa_settings` (lines under `qa:`) scheduling `flow` against `demo`
/// and reading an empty log file; its API is on the returned port.
struct Scheduled {
    _medic: Killed,
    port: u16,
    _env: Env,
    _log: tempfile::NamedTempFile,
}

fn medic_run_with_flow(demo: &Demo, flow: &str, qa_settings: &str) -> Scheduled {
    let port = free_port();
    let flows = root().join("fixtures/demo-app/flows").join(flow);
    let log = tempfile::NamedTempFile::new().expect("log");
    let env = Env::new(&format!(
        "{qa_settings}  flows: [{}]\napi: {{ listen: \"127.0.0.1:{port}\" }}\nsources:\n  docker: {{ enabled: false }}\n  files: [{{ path: {} }}]\n",
        flows.display(),
        log.path().display()
    ));
    let child = Command::new(MEDIC)
        .args(["run", "--config"])
        .arg(env.config())
        .env("DEMO_APP_URL", demo.url())
        .env_remove("MEDIC_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("medic run");
    Scheduled {
        _medic: Killed(child),
        port,
        _env: env,
        _log: log,
    }
}

#[test]
fn medic_run_schedules_flows_and_reports_them() {
    let demo = Demo::start("checkout_500");
    // Other tests may keep this host's CPUs busy: this one runs without waiting for calm.
    let medic = medic_run_with_flow(&demo, "checkout.yaml", "  busy_cpu: 1\n");
    let port = medic.port;
    let get = |path: &str| -> Option<Value> {
        let (s, b) = http(port, "GET", path)?;
        (s == 200)
            .then(|| serde_json::from_slice(&b).ok())
            .flatten()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let qa = loop {
        if let Some(st) = get("/api/status") {
            let qa = st["modules"][2].clone();
            if qa["runs"].as_u64().unwrap_or(0) >= 1 {
                break qa;
            }
        }
        assert!(Instant::now() < deadline, "no QA run reported");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(qa["name"], "qa");
    assert_eq!(qa["failing"], json!(["checkout"]), "{qa}");
    assert_eq!(qa["state"], "active", "{qa}");
    // The failure is an incident on the API, with its ticket, and its screenshot is served.
    let incidents = get("/api/incidents").expect("incidents");
    let inc = incidents["incidents"]
        .as_array()
        .expect("list")
        .iter()
        .find(|i| i["key"]["service"] == "qa:checkout")
        .cloned()
        .expect("a QA incident");
    let run = inc["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .find(|l| l[0] == "qa.run")
        .and_then(|l| l[1].as_str())
        .expect("run label")
        .to_string();
    let (status, png) = http(
        port,
        "GET",
        &format!("/api/qa/artifacts/{run}/screenshot.png"),
    )
    .expect("artifact");
    assert_eq!(status, 200);
    assert_eq!(png_size(&png), (1280, 800));
    let (status, _) = http(port, "GET", "/api/qa/artifacts/../state/medic.db").expect("r");
    assert!(
        status == 400 || status == 404,
        "no path traversal: {status}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = get("/api/tickets").expect("tickets");
        if t["tickets"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["service"] == "qa:checkout"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ticket for the QA incident: {t}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_due_run_waits_for_a_busy_host_then_runs_anyway() {
    let demo = Demo::start("");
    let started = Instant::now();
    // busy_cpu 0: the host always counts as busy, so the run waits its full max_defer.
    let medic = medic_run_with_flow(&demo, "home.yaml", "  busy_cpu: 0\n  max_defer: 4s\n");
    let port = medic.port;
    let qa = || -> Option<Value> {
        let (s, b) = http(port, "GET", "/api/status")?;
        (s == 200)
            .then(|| serde_json::from_slice::<Value>(&b).ok())
            .flatten()
            .map(|v| v["modules"][2].clone())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = loop {
        if let Some(q) = qa()
            && q["deferred"].as_u64() == Some(1)
        {
            break q;
        }
        assert!(
            Instant::now() < deadline,
            "the due run never waited: {:?}",
            qa()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(waiting["runs"], 0, "{waiting}");
    assert!(
        waiting["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("home is due; waiting while the host CPUs are")),
        "{waiting}"
    );
    // The browser run itself gets its own allowance: on a slow or busy host, starting
    // Chromium and loading the page can take most of a minute.
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        if let Some(q) = qa()
            && q["runs"].as_u64().unwrap_or(0) >= 1
        {
            break q;
        }
        assert!(Instant::now() < deadline, "the run never ran: {:?}", qa());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["failures"], 0, "{done}");
    assert_eq!(done["deferred"], 1, "one wait, however many checks: {done}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "ran before max_defer: {:?}",
        started.elapsed()
    );
}
