//! Escalation and tickets end to end: `medic replay --tickets` against local servers that
//! speak the documented Anthropic, OpenAI, Jira v3, GitHub and webhook contracts. The
//! tests assert the exact requests, the ticket lifecycle (create, comment, resolve,
//! reopen), faults (5xx, timeouts, a kill between send and ack, garbage from the LLM, the
//! budget) and that no secret leaves the host.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake::{Fake, Reply, Req};

const MEDIC: &str = env!("CARGO_BIN_EXE_medic");

/// Three error templates, each firing for 12 minutes, quiet for 28 (so the incident
/// resolves), then firing again for a minute (a regression). With the default window
/// each incident notifies: open, updated x3, resolved, reopened, updated.
const TEMPLATES: [&str; 3] = [
    "payment {} failed: connection refused to db.internal:5432",
    "request {} timed out after 3000 ms waiting for inventory",
    "java.lang.NullPointerException: cart {} has no owner",
];

/// Ticket actions per incident for [`scenario`] without a comment cooldown: create, three
/// comments, resolve, reopen, one comment.
const ACTIONS_PER_INCIDENT: usize = 7;

fn timestamp(day: u32, sec: u32) -> String {
    format!(
        "2026-11-{day:02}T{:02}:{:02}:{:02}.000Z",
        10 + sec / 3600,
        sec / 60 % 60,
        sec % 60
    )
}

/// The scenario's log text on the given day of November 2026; `extra` is appended to
/// every line (secrets for the redaction test).
fn scenario(day: u32, extra: &[&str]) -> String {
    let mut lines = Vec::new();
    for (i, t) in TEMPLATES.iter().enumerate() {
        let i = i as u32;
        let secs = (0..12 * 60)
            .step_by(10)
            .chain((40 * 60..41 * 60).step_by(5));
        for (n, s) in secs.enumerate() {
            let mut msg = t.replace("{}", &(1000 + s).to_string());
            if !extra.is_empty() {
                msg.push(' ');
                msg.push_str(extra[n % extra.len()]);
            }
            lines.push((
                s + i,
                format!("{} ERROR [w{i}] com.acme.Svc: {msg}", timestamp(day, s + i)),
            ));
        }
    }
    lines.sort();
    lines.into_iter().map(|(_, l)| l + "\n").collect()
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// A config with `escalate` and `tickets` sections (YAML text, indented by the caller).
    fn config(&self, escalate: &str, tickets: &str) -> PathBuf {
        let text = format!(
            "escalate:\n{escalate}\ntickets:\n  cooldown: 0s\n  retry_initial: 50ms\n  retry_max: 200ms\n  timeout: 2s\n{tickets}\n"
        );
        self.write("medic.yaml", &text)
    }

    fn command(&self, config: &Path, log: &Path, env: &[(&str, &str)]) -> Command {
        self.command_draining(config, log, env, "60s")
    }

    fn command_draining(
        &self,
        config: &Path,
        log: &Path,
        env: &[(&str, &str)],
        drain: &str,
    ) -> Command {
        let mut c = Command::new(MEDIC);
        c.args(["replay", "--tickets", "--drain-timeout", drain, "--config"])
            .arg(config)
            .arg("--state-dir")
            .arg(self.state())
            .arg(log)
            .env("MEDIC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn replay(&self, config: &Path, log: &Path, env: &[(&str, &str)]) -> Output {
        let out = self.command(config, log, env).output().expect("run medic");
        assert!(
            out.status.success(),
            "medic replay --tickets failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn store(&self) -> medic::sink::Store {
        medic::sink::Store::open(&self.state().join("medic.db"), "MEDIC").expect("store")
    }
}

const ANSWER: &str = r#"{"is_error":true,"severity":"high","error_type":"infrastructure","title":"LLM TITLE","description":"The LLM's description.","affected_component":"payments","suggested_fix":"Restart the database.","confidence":0.9}"#;

/// An Anthropic Messages API answer carrying `text`.
fn anthropic_reply(text: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 500, "output_tokens": 80}
        }),
    )
}

fn openai_reply(text: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-test",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 400, "completion_tokens": 60, "total_tokens": 460}
        }),
    )
}

fn anthropic_llm(url: &str, extra: &str) -> String {
    format!(
        "  llm:\n    provider: anthropic\n    model: claude-test\n    base_url: {url}\n    api_key_env: TEST_ANTHROPIC_KEY\n    backoff: 20ms\n{extra}"
    )
}

fn llm_calls(f: &Fake, path: &str) -> Vec<Req> {
    f.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

/// Every ticket in the store with its history kinds.
fn store_tickets(env: &Env) -> Vec<(medic::sink::store::TicketView, Vec<String>)> {
    let store = env.store();
    store
        .tickets(None, 1000)
        .expect("tickets")
        .into_iter()
        .map(|t| {
            let full = store.ticket(&t.key).expect("ticket").expect("exists");
            let kinds = full
                .history
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.kind)
                .collect();
            (full, kinds)
        })
        .collect()
}

#[test]
fn store_tickets_follow_the_incident_lifecycle_and_replays_add_nothing() {
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let cfg = env.config("  llm: null", "");
    env.replay(&cfg, &log, &[]);
    let tickets = store_tickets(&env);
    assert_eq!(tickets.len(), 3, "one ticket per fingerprint");
    for (t, kinds) in &tickets {
        assert_eq!(
            kinds,
            &[
                "created", "comment", "comment", "comment", "resolved", "reopened", "comment"
            ],
            "{}",
            t.key
        );
        assert_eq!(t.status, "open");
        assert!(t.regression, "reopened tickets are regressions");
        assert_eq!(t.count, 84, "the count of the latest notification");
        assert!(t.key.starts_with("MEDIC-"));
        for l in ["AI-Fix", "auto-detected"] {
            assert!(t.labels.iter().any(|x| x == l), "{:?}", t.labels);
        }
        assert!(
            t.labels
                .iter()
                .any(|x| x == &format!("medic-fp-{}", t.fingerprint))
        );
    }
    let types: Vec<&str> = tickets.iter().map(|(t, _)| t.error_type.as_str()).collect();
    for want in ["infrastructure", "performance", "bug"] {
        assert!(types.contains(&want), "{types:?}");
    }
    // The same input again: every notification is recognised, nothing is sent twice.
    env.replay(&cfg, &log, &[]);
    let again = store_tickets(&env);
    assert_eq!(
        again.iter().map(|(_, k)| k.len()).sum::<usize>(),
        tickets.iter().map(|(_, k)| k.len()).sum::<usize>()
    );
}

#[test]
fn update_comments_wait_out_the_cooldown() {
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let text = std::fs::read_to_string(env.config("  llm: null", "")).expect("cfg");
    let cfg = env.write(
        "cooldown.yaml",
        &text.replace("cooldown: 0s", "cooldown: 1m"),
    );
    env.replay(&cfg, &log, &[]);
    let rows = env.store().outbox_rows("store").expect("outbox");
    let cooled: Vec<&str> = rows
        .iter()
        .filter(|r| r.outcome.as_deref() == Some("cooldown"))
        .map(|r| r.idem.as_str())
        .collect();
    // Updates less than a minute (event time) after the ticket's previous note: the
    // 11.8-minute updates of the two templates last commented at 11.2 minutes, and all
    // three updates 25 seconds after the reopen.
    assert_eq!(cooled.len(), 5, "{cooled:?}");
    assert!(cooled.iter().all(|i| i.contains(":updated:")));
    let comments: usize = store_tickets(&env)
        .iter()
        .map(|(_, k)| k.iter().filter(|k| *k == "comment").count())
        .sum();
    assert_eq!(
        comments,
        3 * 4 - 5,
        "each cooled update is one comment fewer"
    );
    // The last notifications of every incident cooled, yet the ticket counts them all.
    for (t, _) in store_tickets(&env) {
        assert_eq!(
            t.count, 84,
            "{}: the count of the latest notification",
            t.key
        );
    }
}

#[test]
fn anthropic_contract_once_per_fingerprint_and_cache_survives_restart() {
    let llm = Fake::start(|_| anthropic_reply(ANSWER));
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let cfg = env.config(&anthropic_llm(&llm.url, ""), "");
    let key = [("TEST_ANTHROPIC_KEY", "sk-ant-test-0123456789abcdef")];
    env.replay(&cfg, &log, &key);

    let calls = llm_calls(&llm, "/v1/messages");
    assert_eq!(
        calls.len(),
        3,
        "one call per fingerprint, not per notification"
    );
    for c in &calls {
        assert_eq!(c.method, "POST");
        assert_eq!(c.header("x-api-key"), Some("sk-ant-test-0123456789abcdef"));
        assert_eq!(c.header("anthropic-version"), Some("2023-06-01"));
        assert!(
            c.header("content-type")
                .is_some_and(|v| v.starts_with("application/json"))
        );
        let b = c.json();
        assert_eq!(b["model"], "claude-test");
        assert_eq!(b["max_tokens"], 1024);
        assert!(
            b["system"]
                .as_str()
                .is_some_and(|s| s.contains("untrusted"))
        );
        assert_eq!(b["messages"][0]["role"], "user");
        let content = b["messages"][0]["content"].as_str().expect("content");
        let marker = content
            .split_whitespace()
            .find(|w| w.starts_with("DATA-"))
            .expect("delimited data block");
        let begin = content.find(&format!("{marker} BEGIN")).expect("begin");
        let end = content.find(&format!("{marker} END")).expect("end");
        let sample = content.find("com.acme.Svc").expect("a sample line is sent");
        assert!(
            begin < sample && sample < end,
            "samples stay inside the data block"
        );
    }
    let tickets = store_tickets(&env);
    assert_eq!(tickets.len(), 3);
    for (t, _) in &tickets {
        assert_eq!(t.title, "LLM TITLE");
        assert_eq!(t.error_type, "infrastructure");
        let full = env.store().ticket(&t.key).expect("ticket").expect("exists");
        assert!(
            full.body
                .as_deref()
                .is_some_and(|b| b.contains("anthropic:claude-test"))
        );
    }

    // A day later the same bugs recur (new incidents, same fingerprints). The cache, read
    // back from the store by a new process, answers: no call.
    let log2 = env.write("app2.log", &scenario(25, &[]));
    env.replay(&cfg, &log2, &key);
    assert_eq!(
        llm_calls(&llm, "/v1/messages").len(),
        3,
        "warm cache: 0 new calls"
    );
    let tickets = store_tickets(&env);
    assert_eq!(tickets.len(), 3, "the recurrence updates the same tickets");
}

#[test]
fn openai_contract_with_key_file_and_fenced_answer() {
    let llm = Fake::start(|_| openai_reply(&format!("Sure:\n```json\n{ANSWER}\n```")));
    let env = Env::new();
    let key = env.write("key", "sk-proj-filekey0123456789abcdef\n");
    let log = env.write("app.log", &scenario(24, &[]));
    let cfg = env.config(
        &format!(
            "  llm:\n    provider: openai\n    model: gpt-test\n    base_url: {}\n    api_key_file: {}\n",
            llm.url,
            key.display()
        ),
        "",
    );
    env.replay(&cfg, &log, &[]);
    let calls = llm_calls(&llm, "/v1/chat/completions");
    assert_eq!(calls.len(), 3);
    let c = &calls[0];
    assert_eq!(
        c.header("authorization"),
        Some("Bearer sk-proj-filekey0123456789abcdef")
    );
    let b = c.json();
    assert_eq!(b["model"], "gpt-test");
    assert_eq!(b["response_format"]["type"], "json_object");
    assert_eq!(b["messages"][0]["role"], "system");
    assert_eq!(b["messages"][1]["role"], "user");
    assert!(
        store_tickets(&env)
            .iter()
            .all(|(t, _)| t.title == "LLM TITLE")
    );
}

/// Run the scenario against an LLM fake; return the tickets' bodies and the call count.
fn with_llm(
    handler: impl Fn(&Req) -> Reply + Send + Sync + 'static,
    extra: &str,
) -> (Vec<String>, usize, Env) {
    let llm = Fake::start(handler);
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let cfg = env.config(&anthropic_llm(&llm.url, extra), "");
    env.replay(&cfg, &log, &[("TEST_ANTHROPIC_KEY", "k")]);
    let store = env.store();
    let bodies = store
        .tickets(None, 100)
        .expect("tickets")
        .iter()
        .map(|t| {
            store
                .ticket(&t.key)
                .expect("t")
                .expect("t")
                .body
                .unwrap_or_default()
        })
        .collect();
    (bodies, llm_calls(&llm, "/v1/messages").len(), env)
}

#[test]
fn llm_garbage_gets_one_repair_then_the_rule_fallback() {
    let (bodies, calls, _env) =
        with_llm(|_| anthropic_reply("I think this is a bug, probably."), "");
    assert_eq!(bodies.len(), 3, "every incident is still ticketed");
    for b in &bodies {
        assert!(b.contains("rules-1 (fallback: LLM answer invalid"), "{b}");
    }
    // Each notification asks again (fallbacks are not cached): per call, one request and
    // one repair.
    assert!(calls >= 6 && calls % 2 == 0, "{calls}");
}

#[test]
fn llm_5xx_and_429_are_retried_honouring_retry_after() {
    let n = Arc::new(Mutex::new(0u32));
    let seen = Arc::clone(&n);
    let (bodies, calls, _env) = with_llm(
        move |_| {
            let mut n = seen.lock().expect("n");
            *n += 1;
            match *n {
                1 => Reply::json(529, json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})),
                2 => Reply::json(429, json!({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}))
                    .header("retry-after", "1"),
                _ => anthropic_reply(ANSWER),
            }
        },
        "",
    );
    assert_eq!(
        calls, 5,
        "two failures retried, then one call per fingerprint"
    );
    assert!(bodies.iter().all(|b| b.contains("anthropic:claude-test")));
}

#[test]
fn llm_timeouts_fall_back() {
    let (bodies, calls, _env) = with_llm(
        |_| anthropic_reply(ANSWER).after(Duration::from_secs(5)),
        "    timeout: 300ms\n    max_retries: 1\n",
    );
    assert_eq!(bodies.len(), 3);
    assert!(
        bodies
            .iter()
            .all(|b| b.contains("fallback: LLM request failed: timed out")),
        "{bodies:?}"
    );
    assert!(calls >= 6, "each classification tried twice: {calls}");
}

#[test]
fn llm_budget_is_enforced_and_falls_back() {
    let llm = Fake::start(|_| anthropic_reply(ANSWER));
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let cfg = env.config(
        &format!(
            "{}  budget:\n    max_calls_per_hour: 1\n",
            anthropic_llm(&llm.url, "")
        ),
        "",
    );
    env.replay(&cfg, &log, &[("TEST_ANTHROPIC_KEY", "k")]);
    assert_eq!(
        llm_calls(&llm, "/v1/messages").len(),
        1,
        "the budget allows one call"
    );
    let store = env.store();
    let bodies: Vec<String> = store
        .tickets(None, 100)
        .expect("tickets")
        .iter()
        .map(|t| {
            store
                .ticket(&t.key)
                .expect("t")
                .expect("t")
                .body
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(bodies.len(), 3);
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.contains("fallback: over the LLM budget"))
            .count(),
        2
    );
}

// ---- Jira ----

#[derive(Default)]
struct JiraIssue {
    key: String,
    labels: Vec<String>,
    done: bool,
    fields: Value,
    comments: Vec<Value>,
}

#[derive(Default)]
struct JiraState {
    issues: Vec<JiraIssue>,
    /// Fail this many upcoming requests with 500.
    fail: u32,
    /// Hang every create response this long (after creating the issue).
    hang_create: Option<Duration>,
    /// Time out this many upcoming comment requests (after recording nothing).
    slow_comments: u32,
    /// Fail this many comments on done issues (a resolve interrupted between its
    /// transition and its note).
    fail_done_comments: u32,
}

/// A fake Jira Cloud REST v3: issues, JQL search by label, comments, transitions.
fn fake_jira(state: Arc<Mutex<JiraState>>) -> Fake {
    Fake::start(move |r| {
        let mut s = state.lock().expect("jira state");
        if s.fail > 0 {
            s.fail -= 1;
            return Reply::json(
                500,
                json!({"errorMessages": ["internal error"], "errors": {}}),
            );
        }
        let parts: Vec<&str> = r
            .path
            .trim_start_matches("/rest/api/3/")
            .trim_start_matches("/rest/api/2/")
            .split('/')
            .collect();
        let issue_json = |i: &JiraIssue| {
            json!({"id": "1", "key": i.key, "fields": {
                "status": {"name": if i.done {"Done"} else {"To Do"}, "statusCategory": {"key": if i.done {"done"} else {"new"}}},
                "labels": i.labels,
                "description": i.fields["description"],
                "comment": {"comments": i.comments},
            }})
        };
        match (r.method.as_str(), parts.as_slice()) {
            ("POST", ["issue"]) => {
                let b = r.json();
                let key = format!("OPS-{}", s.issues.len() + 1);
                s.issues.push(JiraIssue {
                    key: key.clone(),
                    labels: b["fields"]["labels"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    done: false,
                    fields: b["fields"].clone(),
                    comments: vec![],
                });
                let reply = Reply::json(201, json!({"id": "10000", "key": key, "self": "x"}));
                match s.hang_create {
                    Some(d) => reply.after(d),
                    None => reply,
                }
            }
            ("GET", ["search", "jql"] | ["search"]) => {
                let jql = r.param("jql").unwrap_or_default();
                let label = jql
                    .split("labels = \"")
                    .nth(1)
                    .and_then(|x| x.split('"').next())
                    .unwrap_or("")
                    .to_string();
                let found: Vec<Value> = s
                    .issues
                    .iter()
                    .rev()
                    .filter(|i| i.labels.contains(&label))
                    .map(issue_json)
                    .collect();
                Reply::json(200, json!({"issues": found, "isLast": true}))
            }
            ("GET", ["issue", key]) => match s.issues.iter().find(|i| i.key == *key) {
                Some(i) => Reply::json(200, issue_json(i)),
                None => Reply::json(404, json!({"errorMessages": ["Issue does not exist"]})),
            },
            ("PUT", ["issue", key]) => {
                let b = r.json();
                if let Some(i) = s.issues.iter_mut().find(|i| i.key == *key) {
                    for op in b["update"]["labels"].as_array().into_iter().flatten() {
                        if let Some(l) = op["add"].as_str() {
                            i.labels.push(l.to_string());
                        }
                    }
                }
                Reply::empty(204)
            }
            ("POST", ["issue", key, "comment"]) => {
                if s.slow_comments > 0 {
                    s.slow_comments -= 1;
                    return Reply::json(500, json!({})).after(Duration::from_secs(5));
                }
                let b = r.json();
                let done = s.issues.iter().any(|i| i.key == *key && i.done);
                if done && s.fail_done_comments > 0 {
                    s.fail_done_comments -= 1;
                    return Reply::json(503, json!({"errorMessages": ["try later"]}));
                }
                match s.issues.iter_mut().find(|i| i.key == *key) {
                    Some(i) => {
                        i.comments.push(b["body"].clone());
                        Reply::json(201, json!({"id": i.comments.len().to_string()}))
                    }
                    None => Reply::json(404, json!({})),
                }
            }
            ("GET", ["issue", _key, "transitions"]) => Reply::json(
                200,
                json!({"transitions": [
                    {"id": "11", "name": "To Do", "to": {"statusCategory": {"key": "new"}}},
                    {"id": "31", "name": "Done", "to": {"statusCategory": {"key": "done"}}}
                ]}),
            ),
            ("POST", ["issue", key, "transitions"]) => {
                let id = r.json()["transition"]["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if let Some(i) = s.issues.iter_mut().find(|i| i.key == *key) {
                    i.done = id == "31";
                }
                Reply::empty(204)
            }
            _ => Reply::json(
                404,
                json!({"errorMessages": [format!("no route {} {}", r.method, r.path)]}),
            ),
        }
    })
}

fn jira_tickets(url: &str) -> String {
    format!(
        "  store:\n    enabled: false\n  jira:\n    url: {url}\n    project: OPS\n    email: bot@example.com\n    token_env: TEST_JIRA_TOKEN\n"
    )
}

/// Per issue: the fingerprint label and the comments' `medic-action` markers.
fn jira_summary(state: &Mutex<JiraState>) -> BTreeMap<String, (bool, Vec<String>)> {
    let s = state.lock().expect("state");
    s.issues
        .iter()
        .map(|i| {
            let fp = i
                .labels
                .iter()
                .find(|l| l.starts_with("medic-fp-"))
                .cloned()
                .unwrap_or_default();
            let markers = i
                .comments
                .iter()
                .map(|c| {
                    let t = c.to_string();
                    // The action without the incident id (which depends on the file's path).
                    t.split("medic-action: ")
                        .nth(1)
                        .and_then(|x| x.split('"').next())
                        .and_then(|x| x.split_once(':'))
                        .map_or(String::new(), |(_, action)| action.to_string())
                })
                .collect();
            (format!("{fp} {}", i.key), (i.done, markers))
        })
        .collect()
}

#[test]
fn jira_contract_and_lifecycle() {
    let state: Arc<Mutex<JiraState>> = Arc::default();
    let jira = fake_jira(Arc::clone(&state));
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let cfg = env.config("  llm: null", &jira_tickets(&jira.url));
    env.replay(&cfg, &log, &[("TEST_JIRA_TOKEN", "jira-token")]);

    let reqs = jira.requests();
    // Basic auth of bot@example.com:jira-token.
    assert!(
        reqs.iter().all(
            |r| r.header("authorization") == Some("Basic Ym90QGV4YW1wbGUuY29tOmppcmEtdG9rZW4=")
        )
    );
    let creates: Vec<&Req> = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/rest/api/3/issue")
        .collect();
    assert_eq!(creates.len(), 3);
    for c in &creates {
        let f = &c.json()["fields"];
        assert_eq!(f["project"]["key"], "OPS");
        assert_eq!(f["issuetype"]["name"], "Bug");
        assert!(f["summary"].as_str().is_some_and(|s| !s.is_empty()));
        let d = &f["description"];
        assert_eq!(d["type"], "doc");
        assert_eq!(d["version"], 1);
        let nodes: Vec<&str> = d["content"]
            .as_array()
            .expect("adf")
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert!(
            nodes.contains(&"paragraph")
                && nodes.contains(&"codeBlock")
                && nodes.contains(&"bulletList"),
            "{nodes:?}"
        );
        let labels: Vec<&str> = f["labels"]
            .as_array()
            .expect("labels")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(labels[..2], ["AI-Fix", "auto-detected"]);
        assert!(
            ["bug", "performance", "infrastructure"].contains(&labels[2]),
            "{labels:?}"
        );
        assert!(labels[3].starts_with("medic-fp-") && labels[3].len() == "medic-fp-".len() + 16);
        assert!(
            ["High", "Medium"].contains(&f["priority"]["name"].as_str().unwrap_or("")),
            "{f}"
        );
    }
    let search = reqs
        .iter()
        .find(|r| r.path == "/rest/api/3/search/jql")
        .expect("a JQL search");
    let jql = search.param("jql").expect("jql");
    assert!(
        jql.starts_with("project = \"OPS\" AND labels = \"medic-fp-"),
        "{jql}"
    );
    assert!(jql.ends_with("ORDER BY created DESC"), "{jql}");
    // Comments are ADF too.
    let comment = reqs
        .iter()
        .find(|r| r.path.ends_with("/comment"))
        .expect("a comment");
    assert_eq!(comment.json()["body"]["type"], "doc");

    let summary = jira_summary(&state);
    assert_eq!(summary.len(), 3, "{summary:?}");
    for (issue, (done, markers)) in &summary {
        assert!(!done, "{issue}: reopened at the end");
        // 3 updates, the resolve note, the reopen note, 1 update.
        assert_eq!(
            markers.len(),
            ACTIONS_PER_INCIDENT - 1,
            "{issue}: {markers:?}"
        );
    }
    let s = state.lock().expect("state");
    assert!(
        s.issues
            .iter()
            .all(|i| i.labels.iter().any(|l| l == "regression"))
    );
}

#[test]
fn jira_faults_leave_exactly_one_ticket_with_every_comment() {
    // Reference: the fault-free run.
    let clean: Arc<Mutex<JiraState>> = Arc::default();
    let jira = fake_jira(Arc::clone(&clean));
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    env.replay(
        &env.config("  llm: null", &jira_tickets(&jira.url)),
        &log,
        &[("TEST_JIRA_TOKEN", "t")],
    );
    let want: Vec<(bool, Vec<String>)> = jira_summary(&clean).into_values().collect();

    // 500s at the start, and two comments that time out (the client gives up after 2 s,
    // the fake records nothing).
    let faulty: Arc<Mutex<JiraState>> = Arc::new(Mutex::new(JiraState {
        fail: 4,
        slow_comments: 2,
        fail_done_comments: 1,
        ..Default::default()
    }));
    let jira = fake_jira(Arc::clone(&faulty));
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    env.replay(
        &env.config("  llm: null", &jira_tickets(&jira.url)),
        &log,
        &[("TEST_JIRA_TOKEN", "t")],
    );
    let got: Vec<(bool, Vec<String>)> = jira_summary(&faulty).into_values().collect();
    assert_eq!(got, want, "same tickets and comments as without faults");
    let rows = env.store().outbox_rows("jira").expect("outbox");
    assert!(rows.iter().all(|r| r.state == "done"), "{rows:?}");
    // Four 500s, two timeouts and a resolve whose note failed after its transition, each
    // costing the row at the head of the queue one more attempt.
    let retries: u32 = rows.iter().map(|r| r.attempts - 1).sum();
    assert_eq!(retries, 7, "{rows:?}");
}

#[test]
fn killed_between_send_and_ack_creates_no_duplicate() {
    let state: Arc<Mutex<JiraState>> = Arc::new(Mutex::new(JiraState {
        hang_create: Some(Duration::from_secs(600)),
        ..Default::default()
    }));
    let jira = fake_jira(Arc::clone(&state));
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let cfg = env.config("  llm: null", &jira_tickets(&jira.url));
    // A long timeout so the create stays in flight until the kill.
    let cfg_text = std::fs::read_to_string(&cfg)
        .expect("cfg")
        .replace("timeout: 2s", "timeout: 600s");
    std::fs::write(&cfg, cfg_text).expect("cfg");
    let mut child = env
        .command(&cfg, &log, &[("TEST_JIRA_TOKEN", "t")])
        .spawn()
        .expect("spawn medic");
    let deadline = Instant::now() + Duration::from_secs(60);
    while state.lock().expect("s").issues.is_empty() {
        assert!(Instant::now() < deadline, "no create arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The issue exists remotely; medic has not seen the answer. Kill it.
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    state.lock().expect("s").hang_create = None;
    env.replay(&cfg, &log, &[("TEST_JIRA_TOKEN", "t")]);
    let summary = jira_summary(&state);
    assert_eq!(
        summary.len(),
        3,
        "exactly one issue per fingerprint: {summary:?}"
    );
    // The interrupted create was found by its label and not sent again.
    let rows = env.store().outbox_rows("jira").expect("outbox");
    let resumed: Vec<_> = rows
        .iter()
        .filter(|r| r.outcome.as_deref() == Some("already_done"))
        .collect();
    assert_eq!(resumed.len(), 1, "{rows:?}");
    assert_eq!(resumed[0].attempts, 2);
    assert!(resumed[0].idem.contains(":open:"));
    for (issue, (_, markers)) in &summary {
        assert_eq!(
            markers.len(),
            ACTIONS_PER_INCIDENT - 1,
            "{issue}: {markers:?}"
        );
        let mut uniq = markers.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), markers.len(), "no comment twice: {markers:?}");
    }
}

// ---- GitHub ----

#[derive(Default)]
struct GhIssue {
    number: u64,
    labels: Vec<String>,
    state: String,
    body: String,
    comments: Vec<String>,
}

fn fake_github(state: Arc<Mutex<Vec<GhIssue>>>) -> Fake {
    Fake::start(move |r| {
        let mut issues = state.lock().expect("gh");
        let parts: Vec<&str> = r
            .path
            .trim_start_matches("/repos/acme/shop/")
            .split('/')
            .collect();
        let json_of = |i: &GhIssue| {
            json!({"number": i.number, "state": i.state, "body": i.body,
                   "html_url": format!("https://github.example/acme/shop/issues/{}", i.number),
                   "labels": i.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>()})
        };
        match (r.method.as_str(), parts.as_slice()) {
            ("POST", ["issues"]) => {
                let b = r.json();
                let n = issues.len() as u64 + 1;
                issues.push(GhIssue {
                    number: n,
                    labels: b["labels"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect(),
                    state: "open".into(),
                    body: b["body"].as_str().unwrap_or("").into(),
                    comments: vec![],
                });
                Reply::json(201, json_of(issues.last().expect("just pushed")))
            }
            ("GET", ["issues"]) => {
                let label = r.param("labels").unwrap_or_default();
                let list: Vec<Value> = issues
                    .iter()
                    .rev()
                    .filter(|i| i.labels.contains(&label))
                    .map(json_of)
                    .collect();
                Reply::json(200, Value::Array(list))
            }
            ("GET", ["issues", n]) => match issues.iter().find(|i| i.number.to_string() == *n) {
                Some(i) => Reply::json(200, json_of(i)),
                None => Reply::json(404, json!({"message": "Not Found"})),
            },
            ("PATCH", ["issues", n]) => {
                let b = r.json();
                let Some(i) = issues.iter_mut().find(|i| i.number.to_string() == *n) else {
                    return Reply::json(404, json!({"message": "Not Found"}));
                };
                i.state = b["state"].as_str().unwrap_or("open").into();
                Reply::json(200, json!({"number": i.number, "state": i.state}))
            }
            ("POST", ["issues", n, "labels"]) => {
                let b = r.json();
                if let Some(i) = issues.iter_mut().find(|i| i.number.to_string() == *n) {
                    i.labels.extend(
                        b["labels"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|v| v.as_str().map(String::from)),
                    );
                }
                Reply::json(200, json!([]))
            }
            ("POST", ["issues", n, "comments"]) => {
                let b = r.json();
                let Some(i) = issues.iter_mut().find(|i| i.number.to_string() == *n) else {
                    return Reply::json(404, json!({"message": "Not Found"}));
                };
                i.comments.push(b["body"].as_str().unwrap_or("").into());
                Reply::json(201, json!({"id": i.comments.len()}))
            }
            ("GET", ["issues", n, "comments"]) => {
                let list: Vec<Value> = issues
                    .iter()
                    .find(|i| i.number.to_string() == *n)
                    .map(|i| i.comments.iter().map(|c| json!({"body": c})).collect())
                    .unwrap_or_default();
                Reply::json(200, Value::Array(list))
            }
            _ => Reply::json(
                404,
                json!({"message": format!("no route {} {}", r.method, r.path)}),
            ),
        }
    })
}

#[test]
fn github_contract_and_lifecycle() {
    let state: Arc<Mutex<Vec<GhIssue>>> = Arc::default();
    let gh = fake_github(Arc::clone(&state));
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let cfg = env.config(
        "  llm: null",
        &format!("  store:\n    enabled: false\n  github:\n    api_url: {}\n    repo: acme/shop\n    token_env: TEST_GH_TOKEN\n", gh.url),
    );
    env.replay(&cfg, &log, &[("TEST_GH_TOKEN", "ghp_testtoken")]);
    let reqs = gh.requests();
    for r in &reqs {
        assert_eq!(r.header("authorization"), Some("Bearer ghp_testtoken"));
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        assert!(
            r.header("user-agent")
                .is_some_and(|u| u.starts_with("medic/"))
        );
    }
    let list = reqs
        .iter()
        .find(|r| r.method == "GET" && r.path == "/repos/acme/shop/issues")
        .expect("label lookup");
    assert_eq!(list.param("state").as_deref(), Some("all"));
    assert!(
        list.param("labels")
            .is_some_and(|l| l.starts_with("medic-fp-"))
    );
    let closes = reqs
        .iter()
        .filter(|r| r.method == "PATCH" && r.json()["state"] == "closed")
        .count();
    let reopens = reqs
        .iter()
        .filter(|r| r.method == "PATCH" && r.json()["state"] == "open")
        .count();
    assert_eq!((closes, reopens), (3, 3));
    let issues = state.lock().expect("gh");
    assert_eq!(issues.len(), 3);
    for i in issues.iter() {
        assert_eq!(i.state, "open");
        assert!(
            i.labels.contains(&"AI-Fix".to_string())
                && i.labels.contains(&"regression".to_string())
        );
        assert!(i.body.contains("### Samples") && i.body.contains("medic-action: "));
        assert_eq!(i.comments.len(), ACTIONS_PER_INCIDENT - 1);
    }
}

// ---- webhook ----

#[test]
fn webhook_deliveries_are_signed_and_ordered() {
    let gh = Fake::start(|_| Reply::empty(204));
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let cfg = env.config(
        "  llm: null",
        &format!("  store:\n    enabled: false\n  webhook:\n    url: {}/hook\n    secret_env: TEST_HOOK_SECRET\n", gh.url),
    );
    env.replay(&cfg, &log, &[("TEST_HOOK_SECRET", "s3cret")]);
    let reqs = gh.requests();
    assert_eq!(reqs.len(), 3 * ACTIONS_PER_INCIDENT);
    let mut events: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &reqs {
        let sig = r.header("x-medic-signature-256").expect("signed");
        assert_eq!(
            sig,
            medic::sink::webhook::signature("s3cret", r.body.as_bytes())
        );
        assert!(r.header("x-medic-delivery").is_some());
        let b = r.json();
        let key = b["key"].as_str().expect("key").to_string();
        events
            .entry(key)
            .or_default()
            .push(b["event"].as_str().expect("event").to_string());
    }
    for (k, ev) in &events {
        assert_eq!(
            ev,
            &[
                "ticket.created",
                "ticket.commented",
                "ticket.commented",
                "ticket.commented",
                "ticket.resolved",
                "ticket.reopened",
                "ticket.commented"
            ],
            "{k}"
        );
    }
}

// ---- redaction ----

const SECRETS: [&str; 9] = [
    "alice@example.com",
    "Bearer abcdef0123456789XYZ",
    "sk-ant-api03-SECRETSECRETSECRET0123",
    "ghp_0123456789abcdefghijABCDEFGHIJklmnop",
    "postgres://app:hunter2pass@db:5432/x",
    "password=Tr0ub4dor",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
    "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-----END PRIVATE KEY-----",
    "card 4111 1111 1111 1111",
];

/// The part of each secret that must never appear.
const SECRET_CORES: [&str; 9] = [
    "alice@example.com",
    "abcdef0123456789XYZ",
    "SECRETSECRETSECRET0123",
    "ghp_0123456789abcdefghij",
    "hunter2pass",
    "Tr0ub4dor",
    "c2lnbmF0dXJlLXNpZ25hdHVyZQ",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "4111 1111 1111 1111",
];

#[test]
fn no_secret_reaches_the_llm_or_any_ticket() {
    let llm = Fake::start(|_| anthropic_reply(ANSWER));
    let state: Arc<Mutex<JiraState>> = Arc::default();
    let jira = fake_jira(Arc::clone(&state));
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &SECRETS));
    let cfg = env.config(
        &anthropic_llm(&llm.url, ""),
        &jira_tickets(&jira.url).replace("    enabled: false\n", "    enabled: true\n"),
    );
    env.replay(
        &cfg,
        &log,
        &[("TEST_ANTHROPIC_KEY", "k"), ("TEST_JIRA_TOKEN", "t")],
    );
    let mut outgoing: Vec<String> = llm.requests().into_iter().map(|r| r.body).collect();
    outgoing.extend(jira.requests().into_iter().map(|r| r.body));
    let store = env.store();
    for t in store.tickets(None, 100).expect("tickets") {
        let full = store.ticket(&t.key).expect("t").expect("t");
        outgoing.push(full.body.clone().unwrap_or_default());
        outgoing.extend(full.history.unwrap_or_default().into_iter().map(|e| e.body));
    }
    assert!(llm.requests().len() >= 3 && jira.requests().len() >= 3 && outgoing.len() > 10);
    // The samples did go out: only the secrets were replaced.
    assert!(outgoing.iter().any(|b| b.contains("[REDACTED:")));
    for body in &outgoing {
        for s in SECRET_CORES {
            assert!(
                !body.contains(s),
                "secret {s:?} left the host in: {}",
                &body[..body.len().min(400)]
            );
        }
    }
    // The input itself does carry them, so the check above can fail.
    let input = std::fs::read_to_string(&log).expect("log");
    assert!(SECRET_CORES.iter().all(|s| input.contains(s)));
}

// ---- validation ----

#[test]
fn missing_secrets_and_bad_settings_are_named_at_startup() {
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let cases = [
        (
            anthropic_llm("http://127.0.0.1:9", "")
                .replace("TEST_ANTHROPIC_KEY", "MEDIC_TEST_UNSET_VAR"),
            String::new(),
            "MEDIC_TEST_UNSET_VAR",
        ),
        (
            "  llm: null".to_string(),
            "  github:\n    repo: nonsense\n".to_string(),
            "tickets.github.repo",
        ),
        (
            "  llm: null".to_string(),
            "  webhook:\n    url: ftp://x\n".to_string(),
            "tickets.webhook.url",
        ),
        (
            "  redact:\n    patterns: ['(']".to_string(),
            String::new(),
            "escalate.redact.patterns[0]",
        ),
    ];
    for (esc, tix, want) in cases {
        let cfg = env.config(&esc, &tix);
        let out = env.command(&cfg, &log, &[]).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted {esc} {tix}");
        assert!(err.contains(want), "{want} not named in: {err}");
    }
}

// ---- once per incident, at corpus scale ----

#[test]
fn llm_calls_equal_distinct_incidents_and_a_warm_cache_makes_none() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let gen_corpus = root.join("../shared/tools/gen_corpus.py");
    assert!(
        gen_corpus.exists(),
        "the shared corpus generator is missing at {}",
        gen_corpus.display()
    );
    let env = Env::new();
    let corpus = env.path("corpus.log");
    let st = Command::new("python3")
        .arg(&gen_corpus)
        .args([
            "--lines",
            "30000",
            "--format",
            "docker-json",
            "--seed",
            "7",
            "--out",
        ])
        .arg(&corpus)
        .status()
        .expect("python3");
    assert!(st.success());
    let text = std::fs::read_to_string(&corpus).expect("corpus");
    let next_day = env.write(
        "corpus-next-day.log",
        &text.replace("\"time\":\"2026-01-01T", "\"time\":\"2026-01-02T"),
    );
    let llm = Fake::start(|_| anthropic_reply(ANSWER));
    let cfg = env.config(&anthropic_llm(&llm.url, ""), "");
    let distinct = |log: &Path| {
        let out = env
            .command(&cfg, log, &[("TEST_ANTHROPIC_KEY", "k")])
            .stdout(Stdio::piped())
            .output()
            .expect("medic");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ids: std::collections::HashSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("incident")["id"]
                    .as_str()
                    .expect("id")
                    .to_string()
            })
            .collect();
        ids.len()
    };
    let incidents = distinct(&corpus);
    assert!(
        incidents >= 10,
        "the corpus should hold many incidents: {incidents}"
    );
    assert_eq!(
        llm_calls(&llm, "/v1/messages").len(),
        incidents,
        "one LLM call per incident"
    );
    let again = distinct(&next_day);
    assert_eq!(again, incidents, "the same bugs a day later");
    assert_eq!(
        llm_calls(&llm, "/v1/messages").len(),
        incidents,
        "warm cache: no new call"
    );
    assert_eq!(
        env.store().tickets(None, 100_000).expect("tickets").len(),
        incidents
    );
}

#[test]
fn jira_server_v2_takes_wiki_text_and_a_bearer_pat() {
    let state: Arc<Mutex<JiraState>> = Arc::default();
    let jira = fake_jira(Arc::clone(&state));
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let tickets = format!(
        "  store:\n    enabled: false\n  jira:\n    url: {}\n    api_version: 2\n    project: OPS\n    auth: bearer\n    token_env: TEST_JIRA_PAT\n",
        jira.url
    );
    env.replay(
        &env.config("  llm: null", &tickets),
        &log,
        &[("TEST_JIRA_PAT", "pat-123")],
    );
    let reqs = jira.requests();
    assert!(
        reqs.iter().all(|r| r.path.starts_with("/rest/api/2/")),
        "v2 paths only"
    );
    assert!(
        reqs.iter()
            .all(|r| r.header("authorization") == Some("Bearer pat-123"))
    );
    assert!(
        reqs.iter().any(|r| r.path == "/rest/api/2/search"),
        "v2 search"
    );
    let create = reqs
        .iter()
        .find(|r| r.method == "POST" && r.path == "/rest/api/2/issue")
        .expect("create");
    let d = &create.json()["fields"]["description"];
    assert!(
        d.as_str()
            .is_some_and(|s| s.contains("{noformat}") && s.contains("h3. Samples")),
        "{d}"
    );
    let comment = reqs
        .iter()
        .find(|r| r.path.ends_with("/comment"))
        .expect("comment");
    assert!(comment.json()["body"].is_string());
    assert_eq!(jira_summary(&state).len(), 3);
}

#[test]
fn a_sink_that_is_down_keeps_every_action_queued_until_it_returns() {
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let cfg = env.config("  llm: null", &jira_tickets(&dead_url));
    let started = Instant::now();
    let out = env
        .command_draining(&cfg, &log, &[("TEST_JIRA_TOKEN", "t")], "2s")
        .stdout(Stdio::piped())
        .output()
        .expect("medic");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("action(s) still queued"), "{err}");
    // The pipeline was not held up: every incident notification came out.
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 21);
    assert!(started.elapsed() < Duration::from_secs(30));
    let depths = env.store().depths().expect("depths");
    let jira_depth = depths
        .iter()
        .find(|(s, _)| s == "jira")
        .map(|(_, d)| d.pending);
    assert_eq!(jira_depth, Some(21), "{depths:?}");

    // The tracker comes back (at a new address): the same queue drains, in order.
    let state: Arc<Mutex<JiraState>> = Arc::default();
    let jira = fake_jira(Arc::clone(&state));
    let cfg = env.config("  llm: null", &jira_tickets(&jira.url));
    env.replay(&cfg, &log, &[("TEST_JIRA_TOKEN", "t")]);
    let summary = jira_summary(&state);
    assert_eq!(summary.len(), 3);
    assert!(
        summary
            .values()
            .all(|(_, m)| m.len() == ACTIONS_PER_INCIDENT - 1),
        "{summary:?}"
    );
}

/// The most LLM requests in flight at once while the scenario is classified with the
/// given concurrency limit.
fn most_in_flight(limit: u32) -> u32 {
    // (in flight now, most in flight at once)
    let in_flight = Arc::new(Mutex::new((0u32, 0u32)));
    let track = Arc::clone(&in_flight);
    let llm = Fake::start(move |_| {
        let mut g = track.lock().expect("g");
        g.0 += 1;
        g.1 = g.1.max(g.0);
        drop(g);
        // The request ends when its delayed reply goes out, just after this.
        let track = Arc::clone(&track);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(290));
            track.lock().expect("g").0 -= 1;
        });
        anthropic_reply(ANSWER).after(Duration::from_millis(300))
    });
    let env = Env::new();
    let log = env.write("app.log", &scenario(24, &[]));
    let cfg = env.config(
        &anthropic_llm(&llm.url, &format!("    concurrency: {limit}\n")),
        "",
    );
    env.replay(&cfg, &log, &[("TEST_ANTHROPIC_KEY", "k")]);
    assert_eq!(llm_calls(&llm, "/v1/messages").len(), 3);
    in_flight.lock().expect("g").1
}

#[test]
fn llm_requests_respect_the_concurrency_limit() {
    // Distinct fingerprints are classified concurrently...
    assert!(most_in_flight(3) >= 2);
    // ...but never more at once than the limit.
    assert_eq!(most_in_flight(1), 1);
}
