use std::path::Path;

use super::rules::{LoadedFile, parse_file};
use super::*;
use crate::event::{Detection, Event, Level, Origin, Severity};

fn file(name: &str, yaml: &str) -> Result<LoadedFile, RuleError> {
    parse_file(Path::new(name), yaml.to_string())
}

fn set(yaml: &str) -> RuleSet {
    RuleSet::compile(vec![file("t.yaml", yaml).expect("parses")]).expect("compiles")
}

fn event(text: &str, level: Option<Level>) -> Event {
    let mut ev = Event::default();
    ev.text.push_str(text);
    ev.message = 0..text.len();
    ev.level = level;
    ev.lines = 1;
    ev
}

fn hits(set: &RuleSet, text: &str, level: Option<Level>, origin: &Origin) -> Vec<String> {
    let mut d = Detector::new(set);
    let mut out = Detection::default();
    d.detect(&event(text, level), origin, &mut out);
    out.rules
        .iter()
        .map(|r| set.rule(*r).id().to_string())
        .collect()
}

fn replay() -> Origin {
    Origin {
        kind: "replay",
        name: "f.log".into(),
        ..Origin::default()
    }
}

#[test]
fn shipped_rules_compile_and_every_example_passes() {
    let set = load(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")])
        .expect("shipped rules compile");
    let report = check::run_examples(&set);
    assert!(
        report.examples > 80,
        "the shipped rules carry examples: {}",
        report.examples
    );
    let failures: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn embedded_rules_are_the_shipped_rules() {
    let embedded = load_embedded().expect("embedded rules compile");
    let shipped = load(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")]).expect("compile");
    let ids = |s: &RuleSet| {
        s.rules()
            .iter()
            .map(|r| r.id().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&embedded),
        ids(&shipped),
        "a new file in rules/ must be added to EMBEDDED"
    );
    let on_disk = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
        .expect("dir")
        .count();
    assert_eq!(on_disk, EMBEDDED.len());
}

#[test]
fn shipped_rules_avoid_classic_false_positives() {
    let set = load_embedded().expect("compile");
    let quiet = [
        "0 errors, 0 warnings",
        "job finished: error_count=0 retries=1",
        "\"GET /healthz HTTP/1.1\" 404 0 \"-\" \"kube-probe/1.29\"",
        "\"GET /api/items HTTP/1.1\" 200 1043",
        "INFO server started on :8080",
        "processed 500 records in 503 ms",
        "http client configured: timeout=30s",
    ];
    for line in quiet {
        assert_eq!(
            hits(&set, line, None, &replay()),
            Vec::<String>::new(),
            "{line}"
        );
    }
}

#[test]
fn shipped_rules_catch_what_services_print() {
    let set = load_embedded().expect("compile");
    let cases = [
        ("Out of memory: Killed process 123 (java)", "oom-killed"),
        (
            "dial tcp 10.0.0.1:5432: connect: connection refused",
            "connection-refused",
        ),
        (
            "x509: certificate signed by unknown authority",
            "tls-failure",
        ),
        ("\"POST /api/checkout HTTP/1.1\" 502 12", "http-5xx"),
        ("write /data/x: no space left on device", "disk-full"),
        ("context deadline exceeded", "timeout"),
        ("ERROR: deadlock detected", "deadlock"),
        ("Segmentation fault (core dumped)", "segfault"),
    ];
    for (line, id) in cases {
        let got = hits(&set, line, None, &replay());
        assert!(got.iter().any(|g| g == id), "{line}: {got:?}");
    }
}

#[test]
fn hits_are_ordered_by_severity() {
    let set = set(r#"
rules:
  - id: low
    description: d
    severity: low
    match: { any: [boom] }
  - id: crit
    description: d
    severity: critical
    match: { any: [boom] }
"#);
    let mut d = Detector::new(&set);
    let mut out = Detection::default();
    d.detect(&event("boom", None), &replay(), &mut out);
    assert_eq!(out.severity, Some(Severity::Critical));
    assert_eq!(set.rule(out.rules[0]).id(), "crit");
    assert_eq!(d.stats().hits, 1);
    assert_eq!(d.stats().per_rule, vec![1, 1]);
}

#[test]
fn matcher_semantics_table() {
    let set = set(r#"
rules:
  - id: any-ci
    description: d
    severity: low
    match: { any: [Refused], case_insensitive: true }
  - id: any-cs
    description: d
    severity: low
    match: { any: [Refused] }
  - id: all
    description: d
    severity: low
    match: { all: [disk, full] }
  - id: regex-confirm
    description: d
    severity: low
    match: { any: [status], regex: 'status=5\d\d' }
  - id: regex-only
    description: d
    severity: low
    match: { regex: '^\d{3}-\d{4}$' }
  - id: words
    description: d
    severity: low
    match: { any: ["500"], whole_words: true }
  - id: excluded
    description: d
    severity: low
    match: { any: [error] }
    exclude: { any: ["0 errors"], regex: 'error_count=0' }
"#);
    let cases: &[(&str, &[&str])] = &[
        ("connection refused", &["any-ci"]),
        ("connection Refused", &["any-ci", "any-cs"]),
        ("disk is full", &["all"]),
        ("disk ok", &[]),
        ("status=503", &["regex-confirm"]),
        ("status=200", &[]),
        ("555-1234", &["regex-only"]),
        ("code 500 here", &["words"]),
        ("code 15003 here", &[]),
        ("an error", &["excluded"]),
        ("0 errors", &[]),
        ("error_count=0", &[]),
    ];
    for (text, want) in cases {
        let mut got = hits(&set, text, None, &replay());
        got.sort();
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{text}");
    }
}

#[test]
fn level_filter_and_selectors() {
    let set = set(r#"
rules:
  - id: lvl
    description: d
    severity: low
    level: [error]
    match: { any: [boom] }
  - id: lvl-required
    description: d
    severity: low
    level: [error]
    level_required: true
    match: { any: [boom] }
  - id: sel
    description: d
    severity: low
    select: { source: [docker], container: ["api-*"], image: ["acme/*"], labels: { team: "pay*" } }
    match: { any: [boom] }
"#);
    assert_eq!(
        hits(&set, "boom", Some(Level::Error), &replay()),
        ["lvl", "lvl-required"]
    );
    assert_eq!(
        hits(&set, "boom", Some(Level::Info), &replay()),
        Vec::<String>::new()
    );
    assert_eq!(hits(&set, "boom", None, &replay()), ["lvl"]);
    let api = Origin {
        kind: "docker",
        name: "api-1".into(),
        image: Some("acme/api:1.2".into()),
        service: None,
        labels: vec![("team".into(), "payments".into())],
    };
    assert_eq!(hits(&set, "boom", None, &api), ["lvl", "sel"]);
    let other = Origin {
        labels: vec![("team".into(), "search".into())],
        ..api.clone()
    };
    assert_eq!(hits(&set, "boom", None, &other), ["lvl"]);
}

#[test]
fn unknown_keys_are_errors_with_file_line_and_column() {
    let yaml = "rules:\n  - id: a\n    description: d\n    severity: low\n    match: { any: [x] }\n    sevrity: high\n";
    let err = file("broken.yaml", yaml).expect_err("unknown key");
    assert_eq!((err.line, err.column), (6, 5), "{err}");
    assert!(err.message.contains("unknown field `sevrity`"), "{err}");
    assert!(err.to_string().starts_with("broken.yaml:6:5: "), "{err}");
}

#[test]
fn bad_values_are_errors_with_locations() {
    let yaml =
        "rules:\n  - id: a\n    description: d\n    severity: urgent\n    match: { any: [x] }\n";
    let err = file("b.yaml", yaml).expect_err("bad severity");
    assert_eq!(err.line, 4, "{err}");
    assert!(err.message.contains("urgent"), "{err}");
}

#[test]
fn semantic_errors_are_all_reported_and_located() {
    let yaml = r#"rules:
  - id: good
    description: d
    severity: low
    match: { any: [x] }
  - id: bad-regex
    description: d
    severity: low
    match:
      regex: '(unclosed'
  - id: good
    description: duplicate
    severity: low
    match: { any: [y] }
  - id: empty
    description: d
    severity: low
    match: {}
"#;
    let errors =
        RuleSet::compile(vec![file("s.yaml", yaml).expect("parses")]).expect_err("invalid");
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 3, "{shown:#?}");
    assert!(
        shown[0].starts_with("s.yaml:10:7: rules[1].match.regex: "),
        "{}",
        shown[0]
    );
    assert!(
        shown[1].starts_with(
            "s.yaml:11:5: rules[2].id: duplicate id \"good\", first defined at s.yaml:2"
        ),
        "{}",
        shown[1]
    );
    assert!(
        shown[2].starts_with("s.yaml:18:5: rules[3].match: needs at least one"),
        "{}",
        shown[2]
    );
}

#[test]
fn failing_examples_are_located_at_the_example() {
    let yaml = r#"rules:
  - id: r
    description: d
    severity: low
    match: { any: [boom] }
    examples:
      match:
        - "no bang here"
        - "boom"
      no_match:
        - "boom"
"#;
    let set = RuleSet::compile(vec![file("e.yaml", yaml).expect("parses")]).expect("compiles");
    let report = check::run_examples(&set);
    let shown: Vec<String> = report.failures.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 2);
    assert!(
        shown[0].starts_with("e.yaml:8:12: rules[0].examples.match: rule \"r\" does not match"),
        "{}",
        shown[0]
    );
    assert!(
        shown[1].starts_with("e.yaml:11:12: rules[0].examples.no_match: rule \"r\" matches"),
        "{}",
        shown[1]
    );
}

#[test]
fn glob_matching() {
    for (p, t, want) in [
        ("api-*", "api-1", true),
        ("api-*", "web-1", false),
        ("*", "", true),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*-worker-*", "pay-worker-3", true),
        ("exact", "exact", true),
    ] {
        assert_eq!(glob(p, t), want, "{p} {t}");
    }
}
