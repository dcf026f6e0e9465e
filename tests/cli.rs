//! The `medic` binary on the checked-in fixtures: real files, real processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn medic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run medic")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn check_rules_passes_on_the_shipped_rules() {
    let o = medic(&["check-rules", "rules"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).starts_with("SUCCESS: "), "{}", stdout(&o));
}

#[test]
fn check_rules_reports_file_line_column_and_field() {
    let o = medic(&["check-rules", "fixtures/rules-broken"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(
            "fixtures/rules-broken/broken.yaml:12:7: rules[1].match: unknown field `regexp`"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "fixtures/rules-broken/semantic.yaml:7:7: rules[0].match.regex: regex parse error"
        ),
        "{out}"
    );
    // The valid rules' examples still run: semantic.yaml's failing example is reported.
    assert!(
        out.contains("semantic.yaml:15:12: rules[1].examples.match: rule \"failing-example\" does not match \"connection reset\""),
        "{out}"
    );
    assert!(
        out.trim_end()
            .ends_with("FAILED: 2 error(s), 1 of 1 examples failed"),
        "{out}"
    );
}

#[test]
fn check_rules_reports_failing_examples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.yaml");
    std::fs::write(
        &path,
        "rules:\n  - id: r\n    description: d\n    severity: low\n    match: { any: [refused] }\n    examples:\n      match:\n        - \"connection reset\"\n",
    )
    .expect("write");
    let o = medic(&["check-rules", path.to_str().expect("utf8 path")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(
            "r.yaml:8:12: rules[0].examples.match: rule \"r\" does not match \"connection reset\""
        ),
        "{}",
        stdout(&o)
    );
}

#[test]
fn templates_prints_one_object_per_line_in_order() {
    let fmt = "<Date> <Level> \\[<Thread>\\] <Component>: <Content>";
    let o = medic(&["templates", "--log-format", fmt, "fixtures/app.log"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_lines(&o);
    let input_lines = std::fs::read_to_string(root().join("fixtures/app.log"))
        .expect("read")
        .lines()
        .count();
    assert_eq!(rows.len(), input_lines);
    for r in &rows {
        assert!(
            r["fingerprint"].as_str().is_some_and(|f| f.len() == 16),
            "{r}"
        );
        assert!(r["template"].is_string(), "{r}");
    }
    // The two "connection refused" lines differ only by IP: one template.
    assert_eq!(
        rows[7]["template"],
        "dial tcp <*>: connect: connection refused"
    );
    assert_eq!(rows[7]["fingerprint"], rows[8]["fingerprint"]);
    // The two failed requests differ only by id.
    assert_eq!(rows[2]["fingerprint"], rows[11]["fingerprint"]);
    assert_eq!(rows[2]["template"], "request <*> failed");
}

#[test]
fn replay_reports_hits_with_fingerprints_and_a_summary() {
    let o = medic(&["replay", "--output", "hits", "fixtures/app.log"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_lines(&o);
    let rules_of = |r: &serde_json::Value| -> Vec<String> {
        r["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|v| v.as_str().expect("id").to_string())
            .collect()
    };
    // Java traces: one event each (log line + exception + frames), same fingerprint.
    let java: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| {
            r["template"]
                .as_str()
                .is_some_and(|t| t.starts_with("java.lang.IllegalStateException"))
        })
        .collect();
    assert_eq!(java.len(), 2, "{rows:#?}");
    assert_eq!(
        java[0]["template"],
        "java.lang.IllegalStateException: <*> at com.acme.Orders.get < com.acme.Api.handle"
    );
    assert_eq!(java[0]["fingerprint"], java[1]["fingerprint"]);
    assert_eq!(java[0]["lines"], 5);
    assert_eq!(java[0]["level"], "error");
    // Python traceback and Go panic are whole events.
    assert!(rows.iter().any(|r| {
        r["lines"] == 4
            && r["template"]
                .as_str()
                .is_some_and(|t| t.starts_with("ValueError"))
    }));
    assert!(
        rows.iter()
            .any(|r| r["lines"] == 9 && rules_of(r).contains(&"panic".to_string()))
    );
    assert!(
        rows.iter()
            .any(|r| rules_of(r).contains(&"disk-full".to_string()) && r["severity"] == "critical")
    );
    assert!(
        rows.iter()
            .any(|r| rules_of(r).contains(&"http-5xx".to_string()))
    );
    // Classic false positives stay quiet.
    for r in &rows {
        let m = r["message"].as_str().expect("message");
        assert!(
            !m.contains("error_count=0") && !m.contains("0 errors") && !m.contains("/healthz"),
            "{r}"
        );
    }
    let err = stderr(&o);
    assert!(err.contains("medic replay: 33 lines"), "{err}");
    assert!(err.contains("fallbacks: none"), "{err}");
}

#[test]
fn replay_of_docker_json_merges_partials_and_reads_app_json() {
    let o = medic(&["replay", "--output", "hits", "fixtures/docker.log"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_lines(&o);
    let declined = rows
        .iter()
        .find(|r| r["message"] == "payment declined")
        .expect("error-level JSON hit");
    assert_eq!(declined["stream"], "stderr");
    assert_eq!(declined["level"], "error");
    let dump = rows
        .iter()
        .find(|r| {
            r["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("upstream dump"))
        })
        .expect("partial lines merged");
    assert_eq!(dump["lines"], 2);
    assert!(
        dump["message"]
            .as_str()
            .expect("str")
            .ends_with("tail: connection reset by peer")
    );
    assert!(rows.iter().any(|r| {
        r["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .any(|x| x == "oom-killed")
    }));
}

#[test]
fn bad_input_is_counted_never_fatal() {
    let o = medic(&["replay", "--output", "hits", "fixtures/bad-input.log"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("invalid_utf8=2"), "{err}");
    assert!(err.contains("malformed_json=1"), "{err}");
    assert!(err.contains("control_bytes="), "{err}");
    let rows = json_lines(&o);
    assert!(
        rows.iter()
            .any(|r| r["message"] == "final line without newline")
    );
}

#[test]
fn a_ten_mib_line_is_cut_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.log");
    let mut data = b"ERROR ".to_vec();
    data.extend(std::iter::repeat_n(b'y', 10 * 1024 * 1024));
    data.extend_from_slice(b"\nERROR after the huge line\n");
    std::fs::write(&path, data).expect("write");
    let o = medic(&[
        "replay",
        "--output",
        "hits",
        "--max-line-bytes",
        "65536",
        path.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("truncated=1"), "{}", stderr(&o));
    let rows = json_lines(&o);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["message"], "after the huge line");
}

#[test]
fn missing_files_and_bad_formats_are_clear_errors() {
    let o = medic(&["replay", "fixtures/does-not-exist.log"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot open fixtures/does-not-exist.log"),
        "{}",
        stderr(&o)
    );

    let o = medic(&[
        "templates",
        "--log-format",
        "<Date> <Time>",
        "fixtures/app.log",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("invalid log format \"<Date> <Time>\": it has no <Content> placeholder"),
        "{}",
        stderr(&o)
    );

    let o = medic(&[
        "replay",
        "--rules",
        "fixtures/rules-broken",
        "fixtures/app.log",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("broken.yaml:12:7"), "{}", stderr(&o));
}

#[test]
fn bench_json_report_has_the_documented_fields() {
    let o = medic(&["bench", "--input", "fixtures/docker.log", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let last = out.lines().last().expect("output");
    let r: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    for k in [
        "lines",
        "seconds",
        "lines_per_sec",
        "mib_per_sec",
        "peak_rss_bytes",
        "stages",
    ] {
        assert!(!r[k].is_null(), "{k} missing in {r}");
    }
    assert_eq!(r["lines"], 8);
    // Eight lines time every stage within the machine's noise: each is either measured or
    // named as lost in it, never given a made-up rate.
    let unmeasured = r["unmeasured"].as_array().expect("unmeasured list");
    for s in ["read", "parse", "detect", "fingerprint", "window"] {
        let rate = r["stages"][s]["lines_per_sec"].as_f64();
        let noise = unmeasured.iter().any(|u| u == s);
        assert!(
            rate.is_some_and(|v| v > 0.0 && v.is_finite()) != noise,
            "{s}: {r}"
        );
    }
    assert!(r["peak_rss_bytes"].as_u64().is_some_and(|v| v > 0));
    // The core pass is timed whole, not by difference, so it always has a rate.
    let core = r["core"]["seconds"].as_f64().expect("core seconds");
    assert!(core > 0.0 && r["core"]["lines_per_sec"].as_f64().is_some_and(|v| v > 0.0));
    assert!(out.lines().any(|l| l.starts_with("core ")), "{out}");
}

#[test]
fn runs_with_embedded_rules_outside_the_repo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("x.log");
    std::fs::write(&log, "kernel: Out of memory: Killed process 1 (a)\n").expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["replay", "--output", "hits", log.to_str().expect("utf8")])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"oom-killed\""), "{}", stdout(&o));
    assert!(!Path::new(&dir.path().join("rules")).exists());
}

/// `medic replay` prints incidents; the checked-in expected output is the contract.
/// Regenerate after an intended change with `MEDIC_BLESS=1 cargo test --test cli`.
#[test]
fn replay_incidents_match_the_checked_in_expected_output() {
    let o = medic(&["replay", "fixtures/app.log", "fixtures/docker.log"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected_path = root().join("fixtures/expected/replay.jsonl");
    if std::env::var_os("MEDIC_BLESS").is_some() {
        std::fs::create_dir_all(expected_path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&expected_path, &o.stdout).expect("bless");
    }
    let expected = std::fs::read_to_string(&expected_path).expect("expected output is checked in");
    assert_eq!(stdout(&o), expected);
    let rows = json_lines(&o);
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r["state"] == "open"));
    let refused = rows
        .iter()
        .find(|r| r["template"] == "dial tcp <*>: connect: connection refused")
        .expect("incident");
    assert_eq!(refused["count"], 2);
    assert_eq!(refused["samples"].as_array().expect("samples").len(), 2);
    assert!(stderr(&o).contains("8 incidents"), "{}", stderr(&o));
}

#[test]
fn replay_with_two_workers_finds_the_same_incidents() {
    let one = json_lines(&medic(&[
        "replay",
        "fixtures/app.log",
        "fixtures/docker.log",
    ]));
    let two = json_lines(&medic(&[
        "replay",
        "--workers",
        "2",
        "fixtures/app.log",
        "fixtures/docker.log",
    ]));
    let key = |r: &serde_json::Value| {
        (
            r["id"].to_string(),
            r["count"].to_string(),
            r["state"].to_string(),
        )
    };
    let mut a: Vec<_> = one.iter().map(key).collect();
    let mut b: Vec<_> = two.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn replay_table_output_is_readable() {
    let o = medic(&["replay", "--output", "table", "fixtures/app.log"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("STATE"), "{out}");
    assert!(out.contains("write <*>: no space left on device"), "{out}");
}

#[test]
fn a_burst_of_one_error_is_one_incident_with_its_full_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("burst.log");
    let mut data = String::new();
    // 1,000 lines of one error within 10 s, as Docker json-file records, ids varying.
    for i in 0..1000u64 {
        let ms = i * 10;
        data.push_str(&format!(
            "{{\"log\":\"ERROR payment {} failed: dial tcp 10.0.{}.{}:5432: connect: connection refused\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-24T10:00:{:02}.{:03}000000Z\"}}\n",
            1000 + i,
            i % 7,
            i % 250,
            ms / 1000,
            ms % 1000
        ));
    }
    std::fs::write(&path, data).expect("write");
    let o = medic(&["replay", path.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_lines(&o);
    let ids: std::collections::HashSet<&str> =
        rows.iter().map(|r| r["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), 1, "{rows:#?}");
    let last = rows.last().expect("an incident");
    assert_eq!(last["count"], 1000);
    assert_eq!(
        last["template"],
        "payment <*> failed: dial tcp <*>: connect: connection refused"
    );
    assert_eq!(last["key"]["service"], path.to_str().expect("utf8"));
}

#[test]
fn config_print_defaults_checks_and_a_bad_file_is_located() {
    let o = medic(&["config", "--print-defaults"]);
    assert!(o.status.success());
    let dir = tempfile::tempdir().expect("tempdir");
    let defaults = dir.path().join("defaults.yaml");
    std::fs::write(&defaults, &o.stdout).expect("write");
    let o = medic(&["config", "--check", defaults.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", stdout(&o));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "window:\n  group_wait: 30s\n  grup_interval: 5m\n").expect("write");
    let o = medic(&["config", "--check", bad.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("bad.yaml:3:3: window: unknown field `grup_interval`"),
        "{}",
        stdout(&o)
    );

    let o = medic(&[
        "replay",
        "--config",
        bad.to_str().expect("utf8"),
        "fixtures/app.log",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.yaml:3:3"), "{}", stderr(&o));
}

#[test]
fn config_file_settings_reach_the_window_stage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("medic.yaml");
    // A medium threshold of 2 opens the two Java traces of the fixture as one incident.
    std::fs::write(
        &cfg,
        "window:\n  thresholds:\n    medium: { count: 2, within: 1h }\n",
    )
    .expect("write");
    let o = medic(&[
        "replay",
        "--config",
        cfg.to_str().expect("utf8"),
        "fixtures/app.log",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_lines(&o);
    let java = rows
        .iter()
        .find(|r| {
            r["template"]
                .as_str()
                .is_some_and(|t| t.starts_with("java.lang.IllegalStateException"))
        })
        .expect("medium incident opened by the configured threshold");
    assert_eq!(java["count"], 2);
    assert!(
        stderr(&o).contains("medic replay: 33 lines"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_rule_can_group_by_service_and_rule_with_its_own_threshold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("r.yaml");
    std::fs::write(
        &rules,
        r#"rules:
  - id: storage-or-network
    description: Any storage or network failure of a service is one incident.
    severity: low
    match: { any: ["connection refused", "no space left"], case_insensitive: true }
    incident:
      group_by: [service, rule]
      threshold: { count: 3, within: 1h }
"#,
    )
    .expect("write");
    let o = medic(&[
        "replay",
        "--rules",
        rules.to_str().expect("utf8"),
        "fixtures/app.log",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_lines(&o);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    // Two connection-refused lines and one disk-full line: different templates, one
    // incident, opened by the rule's own threshold (low severity would need 20).
    assert_eq!(rows[0]["count"], 3);
    assert_eq!(rows[0]["rules"], serde_json::json!(["storage-or-network"]));
}

#[test]
fn a_month_of_real_syslog_resolves_and_reopens_incidents() {
    // Loghub's Linux sample: syslog timestamps without a year, a month of sshd failures.
    let log = root().join("../shared/loghub/Linux/Linux_2k.log");
    assert!(
        log.exists(),
        "shared Loghub data missing at {}",
        log.display()
    );
    let cfg = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(cfg.path(), "parse:\n  syslog_year: 2005\n").expect("write");
    let o = medic(&[
        "replay",
        "--config",
        cfg.path().to_str().expect("utf8"),
        log.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_lines(&o);
    let reopened: Vec<_> = rows.iter().filter(|r| r["state"] == "reopened").collect();
    assert!(
        !reopened.is_empty(),
        "a month of data has quiet gaps and recurrences"
    );
    assert!(reopened.iter().all(|r| r["regression"] == true));
    for r in &reopened {
        assert!(
            rows.iter()
                .any(|o| o["id"] == r["id"] && o["state"] == "resolved"),
            "a reopened incident was resolved before, under the same id"
        );
    }
    assert!(
        rows.iter().all(|r| r["first_seen_ms"]
            .as_u64()
            .is_some_and(|t| t >= 1_117_584_000_000)),
        "times are in 2005"
    );
}

/// `medic run` on stdin alone (no Docker): it ends at end of input, with the incidents of
/// `replay`, in the incident log.
#[test]
fn run_reads_stdin_into_the_incident_log_and_ends_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("medic.yaml");
    let incidents = dir.path().join("incidents.jsonl");
    std::fs::write(
        &config,
        format!(
            "state_dir: {}\noutput: {{ incidents: {} }}\nsources:\n  docker: {{ enabled: false }}\n  stdin: true\n",
            dir.path().join("state").display(),
            incidents.display()
        ),
    )
    .expect("config");
    let o = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["run", "--config", config.to_str().expect("utf-8")])
        .current_dir(root())
        .stdin(std::fs::File::open(root().join("fixtures/app.log")).expect("fixture"))
        .output()
        .expect("run medic");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("medic run: 33 records"),
        "{}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&incidents).expect("incident log");
    let ids: std::collections::BTreeSet<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .map(|v| {
            assert_eq!(v["key"]["service"], "stdin");
            v["id"].as_str().expect("id").to_string()
        })
        .collect();
    let replayed = medic(&["replay", "fixtures/app.log"]);
    let want: std::collections::BTreeSet<String> = json_lines(&replayed)
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), want.len(), "{text}");
}

/// `medic tap` on a file source prints each line once, and with a state directory a second
/// tap reads only what was appended since.
#[test]
fn tap_prints_file_records_and_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    std::fs::write(&log, "one\ntwo\nthree\n").expect("log");
    let config = dir.path().join("medic.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n  docker: {{ enabled: false }}\n  files: [{{ path: {} }}]\n",
            log.display()
        ),
    )
    .expect("config");
    let state = dir.path().join("state");
    let tap = |limit: &str| {
        medic(&[
            "tap",
            "--config",
            config.to_str().expect("utf-8"),
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--limit",
            limit,
        ])
    };
    let o = tap("3");
    assert!(o.status.success(), "{}", stderr(&o));
    let recs = json_lines(&o);
    let msgs: Vec<&str> = recs.iter().filter_map(|r| r["message"].as_str()).collect();
    assert_eq!(msgs, ["one", "two", "three"]);
    assert_eq!(recs[0]["file"], log.display().to_string());
    assert_eq!(recs[0]["source"], "file");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("append");
    std::io::Write::write_all(&mut f, b"four\n").expect("append");
    let o = tap("1");
    let msgs: Vec<String> = json_lines(&o)
        .iter()
        .filter_map(|r| r["message"].as_str().map(str::to_string))
        .collect();
    assert_eq!(msgs, ["four"]);
}

#[test]
fn a_bad_sources_section_is_located() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("medic.yaml");
    std::fs::write(&config, "sources:\n  docker:\n    mode: sideways\n").expect("config");
    let o = medic(&["tap", "--config", config.to_str().expect("utf-8")]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("medic.yaml:3:"), "{err}");
    assert!(err.contains("sideways"), "{err}");
}
