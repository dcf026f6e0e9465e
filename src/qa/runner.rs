//! The browser runner: one flow in a fresh headless Chromium (its own profile directory),
//! driven over the DevTools protocol with chromiumoxide. Every step waits up to its
//! timeout for its condition (elements to appear, text to show), and a failed step is
//! tried once more. Console errors, uncaught exceptions, failed and 4xx/5xx requests are
//! collected for the whole flow; a failure leaves a screenshot, the DOM and a report.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventResponseReceived, ResourceType,
};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::{Page, ScreenshotParams};
use futures_util::StreamExt;
use serde_json::Value;

use super::flow::{FlowFile, Step, TextCheck, UrlCheck, expand, join};
use super::{FlowRun, QaConfig, StepRun};

/// What the page reported while the flow ran.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub(crate) console_errors: Vec<String>,
    pub(crate) failed_requests: Vec<String>,
    pub(crate) document_status: Option<u16>,
}

/// Flags known to work with Debian's Chromium in containers and CI.
const FLAGS: &[&str] = &[
    "headless",
    "no-sandbox",
    "disable-gpu",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
    "no-first-run",
    "disable-quic",
    "disable-dev-shm-usage",
];

/// Run one flow, keeping artifacts under `artifacts_root/<flow>/<run>/`. Never panics and never returns an error: a browser that cannot start or
/// dies, or a URL that cannot be reached, is a failed run marked `infrastructure`.
pub async fn run_flow(ff: &FlowFile, cfg: &QaConfig, artifacts_root: &Path) -> FlowRun {
    let started = Instant::now();
    let mut run = FlowRun::new(ff);
    let artifacts = &artifacts_root.join(&run.run_dir);
    let session = match Session::launch(cfg).await {
        Ok(s) => s,
        Err(e) => {
            run.fail_infrastructure(e);
            return run;
        }
    };
    match observed_page(&session.browser).await {
        Ok((page, observed, listeners)) => {
            steps(&page, ff, cfg, artifacts, &observed, &mut run).await;
            if !run.passed {
                save_failure(&page, artifacts, &mut run).await;
            }
            for l in listeners {
                l.abort();
            }
            if let Ok(o) = observed.lock() {
                run.console_errors = o.console_errors.clone();
                run.failed_requests = o.failed_requests.clone();
            }
        }
        Err(e) => run.fail_infrastructure(e),
    }
    session.close().await;
    run.duration_ms = started.elapsed().as_millis() as u64;
    if !run.passed
        && let Err(e) = run.write_report(artifacts)
    {
        tracing::warn!(flow = %run.flow, error = %e, "cannot write the QA report");
    }
    run
}

/// A running browser with its own profile directory.
pub(crate) struct Session {
    pub(crate) browser: Browser,
    driver: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Session {
    /// Start Chromium with a fresh profile.
    pub(crate) async fn launch(cfg: &QaConfig) -> Result<Session, String> {
        let profile = tempfile::Builder::new()
            .prefix("medic-qa-")
            .tempdir()
            .map_err(|e| format!("cannot create a browser profile directory: {e}"))?;
        let (vw, vh) = (cfg.viewport.0, cfg.viewport.1);
        if !cfg.chromium.exists() {
            return Err(format!(
                "cannot start the browser {}: no such file (install Debian's chromium)",
                cfg.chromium.display()
            ));
        }
        let config = BrowserConfig::builder()
            .chrome_executable(&cfg.chromium)
            .user_data_dir(profile.path())
            .no_sandbox()
            .args(FLAGS.iter().copied())
            .window_size(vw, vh)
            .viewport(Viewport {
                width: vw,
                height: vh,
                ..Viewport::default()
            })
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(cfg.step_timeout.max(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("browser settings: {e}"))?;
        let (browser, mut handler) = Browser::launch(config)
            .await
            .map_err(|e| format!("cannot start the browser {}: {e}", cfg.chromium.display()))?;
        let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Ok(Session {
            browser,
            driver,
            _profile: profile,
        })
    }

    /// Close, then wait, so no browser process outlives the run.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.browser.close()).await;
        if tokio::time::timeout(Duration::from_secs(5), self.browser.wait())
            .await
            .is_err()
        {
            let _ = self.browser.kill().await;
        }
        self.driver.abort();
    }
}

/// The Linux scheduling policy that only runs a thread when no other thread wants the
/// CPU. Lowering one's own policy needs no privilege.
const SCHED_IDLE: i32 = 5;
/// The capability to raise priorities, `CAP_SYS_NICE`.
const CAP_SYS_NICE: libc::c_ulong = 23;

/// Put the calling thread under `SCHED_IDLE`, for good: threads and processes it starts
/// inherit the policy, and lose the capability to leave it. Chromium running as root
/// otherwise puts its own threads back to normal policy at nice -8, ahead of the log
/// pipeline. Capability bounding sets are per thread, so the rest of medic keeps its own.
pub fn make_current_thread_idle() -> std::io::Result<()> {
    // Without CAP_SETPCAP the drop fails; a process that lacks it rarely has CAP_SYS_NICE
    // to lose, so that is not an error.
    #[allow(unsafe_code)]
    // SAFETY: prctl with PR_CAPBSET_DROP takes a capability number and no pointers.
    let dropped = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0) } == 0;
    if !dropped {
        tracing::debug!(error = %std::io::Error::last_os_error(), "CAP_SYS_NICE stays in QA's bounding set");
    }
    set_idle(0)
}

#[allow(unsafe_code)]
fn set_idle(tid: u32) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    let tid = libc::pid_t::try_from(tid).map_err(std::io::Error::other)?;
    // SAFETY: `param` is a valid sched_param that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(tid, SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A page with console errors and document statuses collected.
pub(crate) async fn observed_page(
    browser: &Browser,
) -> Result<(Page, Arc<Mutex<Observed>>, Vec<tokio::task::JoinHandle<()>>), String> {
    let page = browser
        .new_page("about:blank")
        .await
        .map_err(|e| format!("cannot open a page: {e}"))?;
    let observed: Arc<Mutex<Observed>> = Arc::default();
    let tasks = listen(&page, &observed).await;
    Ok((page, observed, tasks))
}

async fn listen(page: &Page, observed: &Arc<Mutex<Observed>>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Ok(mut s) = page.event_listener::<EventConsoleApiCalled>().await {
        let o = Arc::clone(observed);
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = s.next().await {
                if ev.r#type == ConsoleApiCalledType::Error {
                    let text: Vec<String> = ev
                        .args
                        .iter()
                        .map(|a| match (&a.value, &a.description) {
                            (Some(Value::String(s)), _) => s.clone(),
                            (Some(v), _) => v.to_string(),
                            (None, Some(d)) => d.clone(),
                            (None, None) => String::new(),
                        })
                        .collect();
                    if let Ok(mut o) = o.lock() {
                        o.console_errors.push(text.join(" "));
                    }
                }
            }
        }));
    }
    if let Ok(mut s) = page.event_listener::<EventExceptionThrown>().await {
        let o = Arc::clone(observed);
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = s.next().await {
                let d = &ev.exception_details;
                let what = d
                    .exception
                    .as_ref()
                    .and_then(|e| e.description.clone())
                    .unwrap_or_else(|| d.text.clone());
                let first = what.lines().next().unwrap_or("").to_string();
                if let Ok(mut o) = o.lock() {
                    o.console_errors.push(format!("uncaught {first}"));
                }
            }
        }));
    }
    if let Ok(mut s) = page.event_listener::<EventResponseReceived>().await {
        let o = Arc::clone(observed);
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = s.next().await {
                let status = u16::try_from(ev.response.status).unwrap_or(0);
                if let Ok(mut o) = o.lock() {
                    if ev.r#type == ResourceType::Document {
                        o.document_status = Some(status);
                    }
                    // The browser's own favicon probe is not the page's request.
                    if status >= 400 && !ev.response.url.ends_with("/favicon.ico") {
                        o.failed_requests
                            .push(format!("{status} {}", ev.response.url));
                    }
                }
            }
        }));
    }
    if let Ok(mut s) = page.event_listener::<EventLoadingFailed>().await {
        let o = Arc::clone(observed);
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = s.next().await {
                if ev.canceled == Some(true) {
                    continue;
                }
                if let Ok(mut o) = o.lock() {
                    o.failed_requests
                        .push(format!("failed {:?}: {}", ev.r#type, ev.error_text));
                }
            }
        }));
    }
    tasks
}

async fn steps(
    page: &Page,
    ff: &FlowFile,
    cfg: &QaConfig,
    artifacts: &Path,
    observed: &Arc<Mutex<Observed>>,
    run: &mut FlowRun,
) {
    let timeout = ff.flow.step_timeout.unwrap_or(cfg.step_timeout);
    for (i, step) in ff.flow.steps.iter().enumerate() {
        let started = Instant::now();
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let r = match tokio::time::timeout(
                step_timeout(step, timeout) + Duration::from_secs(1),
                one(page, ff, step, timeout, artifacts, observed),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(Failure::step(format!(
                    "timed out after {}",
                    crate::event::duration::format(&step_timeout(step, timeout))
                ))),
            };
            match r {
                Err(f) if !f.infrastructure && attempts <= cfg.retries => continue,
                other => break other,
            }
        };
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(()) => run.steps.push(StepRun::ok(i, step, ms, attempts)),
            Err(f) => {
                run.steps
                    .push(StepRun::failed(i, step, ms, attempts, &f.message));
                run.fail_at(i, f.message, f.infrastructure);
                // The rest did not run; the report lists them as skipped.
                return;
            }
        }
    }
}

/// Why a step failed.
struct Failure {
    message: String,
    infrastructure: bool,
}

impl Failure {
    fn step(message: String) -> Failure {
        Failure {
            message,
            infrastructure: false,
        }
    }
    fn infra(message: String) -> Failure {
        Failure {
            message,
            infrastructure: true,
        }
    }
}

fn step_timeout(step: &Step, default: Duration) -> Duration {
    match step {
        Step::WaitFor(w) => w.timeout.unwrap_or(default),
        _ => default,
    }
}

/// A JavaScript function finding an element by CSS or `text=`: for text, the deepest
/// element whose text (or button value) contains it, an exact match first.
const FIND: &str = r#"(sel) => {
  if (!sel.startsWith("text=")) return document.querySelector(sel);
  const want = sel.slice(5).trim();
  const text = (e) => ((e.innerText || "") + " " + (e.value || "")).trim();
  const all = [...document.querySelectorAll("body *")].filter((e) => text(e).includes(want));
  const deep = all.filter((e) => ![...e.children].some((c) => text(c).includes(want)));
  return deep.find((e) => text(e) === want) || deep[0] || null;
}"#;

const VISIBLE: &str = r#"(e) => {
  if (!e) return false;
  const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none";
}"#;

/// Evaluate `body` with `el` bound to the element `sel` finds (or null); the body returns
/// a value that is JSON.
async fn with_element(page: &Page, sel: &str, body: &str) -> Result<Value, Failure> {
    let expr = format!(
        "(() => {{ const find = {FIND}; const visible = {VISIBLE}; const el = find({}); {body} }})()",
        serde_json::to_string(sel).unwrap_or_default()
    );
    eval(page, &expr).await
}

async fn eval(page: &Page, expr: &str) -> Result<Value, Failure> {
    match page.evaluate(expr).await {
        Ok(r) => Ok(r.value().cloned().unwrap_or(Value::Null)),
        Err(e) => {
            let msg = e.to_string();
            // A navigation in flight destroys the context: the step's poll tries again.
            if msg.contains("context") || msg.contains("Cannot find") {
                Ok(Value::Null)
            } else {
                Err(Failure::infra(format!(
                    "the browser stopped answering: {msg}"
                )))
            }
        }
    }
}

/// Poll `check` every 100 ms until it returns `Ok(true)` or `limit` passes; the last
/// reason it gave is the error.
async fn poll<F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<(), Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<(), String>, Failure>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = match check().await? {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(Failure::step(format!(
                "{what}: {last} (waited {})",
                crate::event::duration::format(&limit)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn value_of(v: &str) -> Result<String, Failure> {
    expand(v).map_err(|e| Failure::step(format!("cannot expand a variable: {e}")))
}

async fn one(
    page: &Page,
    ff: &FlowFile,
    step: &Step,
    timeout: Duration,
    artifacts: &Path,
    observed: &Arc<Mutex<Observed>>,
) -> Result<(), Failure> {
    let base = value_of(&ff.flow.base_url)?;
    match step {
        Step::Navigate(target) => {
            let url = join(&base, &value_of(target)?);
            if let Ok(mut o) = observed.lock() {
                o.document_status = None;
            }
            page.goto(url.as_str()).await.map_err(|e| {
                let m = e.to_string();
                // net::ERR_* is the network or the server being away: infrastructure.
                if m.contains("net::ERR") {
                    Failure::infra(format!("cannot load {url}: {m}"))
                } else {
                    Failure::step(format!("cannot load {url}: {m}"))
                }
            })?;
            Ok(())
        }
        Step::Click(sel) => {
            let sel = value_of(sel)?;
            poll(timeout, &format!("click {sel}"), || async {
                let v = with_element(
                    page,
                    &sel,
                    "if (!el) return 'no element matches'; if (!visible(el)) return 'the element is not visible'; if (el.disabled) return 'the element is disabled'; el.scrollIntoView({block: 'center'}); el.click(); return 'ok';",
                )
                .await?;
                Ok(ok_or(v))
            })
            .await
        }
        Step::Fill(f) | Step::Select(f) => {
            let sel = value_of(&f.selector)?;
            let value = value_of(&f.value)?;
            let is_select = matches!(step, Step::Select(_));
            let body = format!(
                "if (!el) return 'no element matches'; const v = {}; \
                 if ({is_select}) {{ const o = [...el.options].find((o) => o.value === v || o.text.trim() === v); \
                 if (!o) return 'no option ' + JSON.stringify(v); el.value = o.value; }} \
                 else {{ el.focus(); el.value = v; }} \
                 el.dispatchEvent(new Event('input', {{bubbles: true}})); el.dispatchEvent(new Event('change', {{bubbles: true}})); return 'ok';",
                serde_json::to_string(&value).unwrap_or_default()
            );
            poll(timeout, &step.describe(), || async {
                Ok(ok_or(with_element(page, &sel, &body).await?))
            })
            .await
        }
        Step::Press(p) => {
            let key = value_of(&p.key)?;
            let sel = match &p.selector {
                Some(s) => value_of(s)?,
                None => String::new(),
            };
            if !sel.is_empty() {
                poll(timeout, &format!("focus {sel}"), || async {
                    Ok(ok_or(
                        with_element(
                            page,
                            &sel,
                            "if (!el) return 'no element matches'; el.focus(); return 'ok';",
                        )
                        .await?,
                    ))
                })
                .await?;
            }
            let target = page
                .find_element(":focus")
                .await
                .or(page.find_element("body").await)
                .map_err(|e| Failure::step(format!("nothing to send {key} to: {e}")))?;
            target
                .press_key(&key)
                .await
                .map_err(|e| Failure::step(format!("press {key}: {e}")))?;
            Ok(())
        }
        Step::WaitFor(w) => {
            let limit = w.timeout.unwrap_or(timeout);
            if let Some(sel) = &w.selector {
                let sel = value_of(sel)?;
                poll(limit, &format!("wait for {sel}"), || async {
                    Ok(ok_or(
                        with_element(page, &sel, "return !el ? 'no element matches' : visible(el) ? 'ok' : 'the element is not visible';")
                            .await?,
                    ))
                })
                .await?;
            }
            if let Some(t) = &w.text {
                let t = value_of(t)?;
                page_text(page, limit, &t, &format!("wait for text {t:?}")).await?;
            }
            if w.network_idle {
                network_idle(page, limit).await?;
            }
            Ok(())
        }
        Step::AssertText(TextCheck::Page(t)) => {
            let t = value_of(t)?;
            page_text(page, timeout, &t, &format!("assert text {t:?}")).await
        }
        Step::AssertText(TextCheck::In { selector, text }) => {
            let sel = value_of(selector)?;
            let t = value_of(text)?;
            let body = format!(
                "if (!el) return 'no element matches'; const t = (el.innerText || el.value || '').trim(); \
                 return t.includes({}) ? 'ok' : 'it shows ' + JSON.stringify(t.slice(0, 200));",
                serde_json::to_string(&t).unwrap_or_default()
            );
            poll(timeout, &step.describe(), || async {
                Ok(ok_or(with_element(page, &sel, &body).await?))
            })
            .await
        }
        Step::AssertVisible(sel) => {
            let sel = value_of(sel)?;
            poll(timeout, &format!("assert visible {sel}"), || async {
                Ok(ok_or(
                    with_element(page, &sel, "return !el ? 'no element matches' : visible(el) ? 'ok' : 'the element is not visible';")
                        .await?,
                ))
            })
            .await
        }
        Step::AssertUrl(check) => {
            let (want, exact) = match check {
                UrlCheck::Contains(u) => (value_of(u)?, false),
                UrlCheck::Exact { equals } => (join(&base, &value_of(equals)?), true),
            };
            poll(timeout, &step.describe(), || async {
                let url = page.url().await.ok().flatten().unwrap_or_default();
                let ok = if exact {
                    url == want
                } else {
                    url.contains(&want)
                };
                Ok(if ok {
                    Ok(())
                } else {
                    Err(format!("the URL is {url}"))
                })
            })
            .await
        }
        Step::AssertStatus(want) => {
            let got = observed.lock().ok().and_then(|o| o.document_status);
            match got {
                Some(s) if s == *want => Ok(()),
                Some(s) => Err(Failure::step(format!(
                    "the last page answered HTTP {s}, not {want}"
                ))),
                None => Err(Failure::step("no page was loaded yet".into())),
            }
        }
        Step::AssertNoConsoleErrors(false) => Ok(()),
        Step::AssertNoConsoleErrors(true) => {
            // Errors logged by scripts still running after load count too.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let errors = observed
                .lock()
                .map(|o| o.console_errors.clone())
                .unwrap_or_default();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(Failure::step(format!(
                    "{} console error(s): {}",
                    errors.len(),
                    errors.join("; ")
                )))
            }
        }
        Step::Screenshot(name) => {
            let png = page
                .screenshot(
                    ScreenshotParams::builder()
                        .format(CaptureScreenshotFormat::Png)
                        .build(),
                )
                .await
                .map_err(|e| Failure::infra(format!("screenshot: {e}")))?;
            std::fs::create_dir_all(artifacts)
                .and_then(|_| std::fs::write(artifacts.join(format!("{name}.png")), png))
                .map_err(|e| Failure::step(format!("cannot save the screenshot: {e}")))
        }
    }
}

/// Turn a JS verdict (`'ok'` or a reason) into a poll result.
fn ok_or(v: Value) -> Result<(), String> {
    match v.as_str() {
        Some("ok") => Ok(()),
        Some(why) => Err(why.to_string()),
        None => Err("the page is loading".into()),
    }
}

async fn page_text(page: &Page, limit: Duration, t: &str, what: &str) -> Result<(), Failure> {
    let js = format!(
        "document.body && document.body.innerText.includes({}) ? 'ok' : 'the page does not show it'",
        serde_json::to_string(t).unwrap_or_default()
    );
    poll(limit, what, || async { Ok(ok_or(eval(page, &js).await?)) }).await
}

/// Network idle: the document loaded and its resource count stayed the same for half
/// a second.
async fn network_idle(page: &Page, limit: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + limit;
    let mut last = (-1i64, Instant::now());
    loop {
        let n = eval(
            page,
            "document.readyState === 'complete' ? performance.getEntriesByType('resource').length : -1",
        )
        .await?
        .as_i64()
        .unwrap_or(-1);
        let now = Instant::now();
        if n >= 0 && n == last.0 && now.duration_since(last.1) >= Duration::from_millis(500) {
            return Ok(());
        }
        if n != last.0 {
            last = (n, now);
        }
        if now >= deadline {
            return Err(Failure::step(format!(
                "wait for network idle: requests still starting (waited {})",
                crate::event::duration::format(&limit)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Screenshot and DOM of a failed run, next to its report.
async fn save_failure(page: &Page, artifacts: &Path, run: &mut FlowRun) {
    if let Err(e) = std::fs::create_dir_all(artifacts) {
        tracing::warn!(error = %e, "cannot create the QA artifacts directory");
        return;
    }
    let shot = tokio::time::timeout(
        Duration::from_secs(10),
        page.screenshot(
            ScreenshotParams::builder()
                .format(CaptureScreenshotFormat::Png)
                .build(),
        ),
    )
    .await;
    if let Ok(Ok(png)) = shot
        && std::fs::write(artifacts.join("screenshot.png"), png).is_ok()
    {
        run.artifacts.push("screenshot.png".into());
    }
    if let Ok(Ok(html)) = tokio::time::timeout(Duration::from_secs(10), page.content()).await {
        const MAX: usize = 256 * 1024;
        let mut html = html;
        if html.len() > MAX {
            let mut cut = MAX;
            while !html.is_char_boundary(cut) {
                cut -= 1;
            }
            html.truncate(cut);
            html.push_str("\n<!-- trimmed by medic -->\n");
        }
        if std::fs::write(artifacts.join("dom.html"), html).is_ok() {
            run.artifacts.push("dom.html".into());
        }
    }
    run.url = page.url().await.ok().flatten();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(path: &str) -> Option<i32> {
        let s = std::fs::read_to_string(path).ok()?;
        s[s.rfind(')')? + 2..]
            .split_whitespace()
            .nth(38)?
            .parse()
            .ok()
    }

    /// Whether a child process of the calling thread can move itself back to the normal
    /// policy, and the policy it started with.
    fn child_escapes() -> (bool, Option<i32>) {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import os\nprint(open('/proc/self/stat').read().rsplit(')',1)[1].split()[38])\n\
                 try:\n    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)); print('escaped')\n\
                 except PermissionError:\n    print('stayed')",
            ])
            .output()
            .expect("python3");
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = out.lines();
        let policy = lines.next().and_then(|p| p.parse().ok());
        (lines.next() == Some("escaped"), policy)
    }

    #[test]
    fn an_idle_thread_and_the_processes_it_starts_stay_idle() {
        let (before, after, child) = std::thread::spawn(|| {
            let before = policy("/proc/thread-self/stat");
            make_current_thread_idle().expect("SCHED_IDLE needs no privilege");
            let after = policy("/proc/thread-self/stat");
            (before, after, child_escapes())
        })
        .join()
        .expect("thread");
        assert_eq!(before, Some(0), "SCHED_OTHER to start with");
        assert_eq!(after, Some(SCHED_IDLE));
        assert_eq!(child, (false, Some(SCHED_IDLE)), "inherited, and kept");
    }

    #[test]
    fn without_the_capability_drop_a_root_child_leaves_idle() {
        // The control for the test above: it is the dropped capability that keeps a
        // child idle. A child of root escapes without the drop; one of another user
        // never had the capability.
        #[allow(unsafe_code)]
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let escaped = std::thread::spawn(|| {
            set_idle(0).expect("idle");
            child_escapes()
        })
        .join()
        .expect("thread");
        assert_eq!(escaped, (root, Some(SCHED_IDLE)));
    }
}
