//! Flow files: YAML documents describing a browser journey, validated with located
//! errors (`medic check-flows`). Values may use `${VAR}` or `${VAR:-default}`, expanded
//! from the environment only when a step runs, so reports keep the unexpanded text and a
//! secret never lands in an artifact.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cron::Cron;
use crate::event::duration;

/// How important a flow is; it becomes the incident's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// A flow users cannot live without (login, checkout).
    Critical,
    /// Important.
    High,
    /// Worth knowing.
    Medium,
}

/// A flow file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Unique name (the incident key).
    pub name: String,
    /// What the flow checks.
    #[serde(default)]
    pub description: String,
    /// Severity of its failures.
    pub priority: Priority,
    /// Scheme and host (and optional path) relative navigations are joined to.
    pub base_url: String,
    /// Run every this long (with jitter) in `medic run`.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub every: Option<Duration>,
    /// Or on a five-field cron schedule (UTC): `*/30 * * * *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Per-step timeout for this flow (default: `qa.step_timeout`).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub step_timeout: Option<Duration>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// A selector and a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// CSS, or `text=...`.
    pub selector: String,
    /// The value (may use `${VAR}`).
    pub value: String,
}

/// A key press.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Press {
    /// The element that gets the key (default: the focused one).
    #[serde(default)]
    pub selector: Option<String>,
    /// Key name: `Enter`, `Tab`, `Escape`, `ArrowDown`, a character...
    pub key: String,
}

/// What to wait for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    /// An element matching this selector.
    #[serde(default)]
    pub selector: Option<String>,
    /// This text anywhere on the page.
    #[serde(default)]
    pub text: Option<String>,
    /// No new network requests for half a second, and the document loaded.
    #[serde(default)]
    pub network_idle: bool,
    /// How long at most (default: the step timeout).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
}

/// Text that must be on the page, or inside an element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TextCheck {
    /// Anywhere on the page.
    Page(String),
    /// Inside an element.
    In {
        /// The element.
        selector: String,
        /// The text.
        text: String,
    },
}

/// A URL check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UrlCheck {
    /// The URL contains this.
    Contains(String),
    /// Explicit forms.
    Exact {
        /// The whole URL equals this (relative values are joined to `base_url`).
        equals: String,
    },
}

/// One step, written as a one-key map: `- click: "#pay"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Load a URL (relative to `base_url`, or absolute).
    Navigate(String),
    /// Click an element.
    Click(String),
    /// Type into an input (its value is replaced).
    Fill(Field),
    /// Choose an option of a `<select>` by value or label.
    Select(Field),
    /// Press a key.
    Press(Press),
    /// Wait for an element, text or network idle.
    WaitFor(WaitFor),
    /// Text is present.
    AssertText(TextCheck),
    /// An element is visible.
    AssertVisible(String),
    /// The current URL.
    AssertUrl(UrlCheck),
    /// The HTTP status of the last document navigation.
    AssertStatus(u16),
    /// No console errors or uncaught exceptions so far.
    AssertNoConsoleErrors(bool),
    /// Save a screenshot under this name with the run's artifacts.
    Screenshot(String),
}

const STEP_KINDS: &[&str] = &[
    "navigate",
    "click",
    "fill",
    "select",
    "press",
    "wait_for",
    "assert_text",
    "assert_visible",
    "assert_url",
    "assert_status",
    "assert_no_console_errors",
    "screenshot",
];

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // YAML writes a step as a map with one key; read it generically, then the value
        // as that kind's type.
        let m = std::collections::BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let mut it = m.into_iter();
        let (Some((kind, v)), None) = (it.next(), it.next()) else {
            return Err(D::Error::custom(format!(
                "a step is a map with one key, one of {}",
                STEP_KINDS.join(", ")
            )));
        };
        fn val<T: serde::de::DeserializeOwned, E: Error>(
            kind: &str,
            v: serde_json::Value,
        ) -> Result<T, E> {
            serde_json::from_value(v).map_err(|e| E::custom(format!("{kind}: {e}")))
        }
        Ok(match kind.as_str() {
            "navigate" => Step::Navigate(val(&kind, v)?),
            "click" => Step::Click(val(&kind, v)?),
            "fill" => Step::Fill(val(&kind, v)?),
            "select" => Step::Select(val(&kind, v)?),
            "press" => Step::Press(val(&kind, v)?),
            "wait_for" => Step::WaitFor(val(&kind, v)?),
            "assert_text" => Step::AssertText(val(&kind, v)?),
            "assert_visible" => Step::AssertVisible(val(&kind, v)?),
            "assert_url" => Step::AssertUrl(val(&kind, v)?),
            "assert_status" => Step::AssertStatus(val(&kind, v)?),
            "assert_no_console_errors" => Step::AssertNoConsoleErrors(val(&kind, v)?),
            "screenshot" => Step::Screenshot(val(&kind, v)?),
            other => {
                return Err(D::Error::custom(format!(
                    "unknown variant `{other}`, expected one of {}",
                    STEP_KINDS.join(", ")
                )));
            }
        })
    }
}

impl Step {
    /// The step's kind, as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Navigate(_) => "navigate",
            Step::Click(_) => "click",
            Step::Fill(_) => "fill",
            Step::Select(_) => "select",
            Step::Press(_) => "press",
            Step::WaitFor(_) => "wait_for",
            Step::AssertText(_) => "assert_text",
            Step::AssertVisible(_) => "assert_visible",
            Step::AssertUrl(_) => "assert_url",
            Step::AssertStatus(_) => "assert_status",
            Step::AssertNoConsoleErrors(_) => "assert_no_console_errors",
            Step::Screenshot(_) => "screenshot",
        }
    }

    /// A one-line description with values unexpanded (secrets stay `${VAR}`).
    pub fn describe(&self) -> String {
        match self {
            Step::Navigate(u) => format!("navigate {u}"),
            Step::Click(s) => format!("click {s}"),
            Step::Fill(f) => format!("fill {} with {}", f.selector, f.value),
            Step::Select(f) => format!("select {} in {}", f.value, f.selector),
            Step::Press(p) => match &p.selector {
                Some(s) => format!("press {} in {s}", p.key),
                None => format!("press {}", p.key),
            },
            Step::WaitFor(w) => {
                let mut parts = Vec::new();
                if let Some(s) = &w.selector {
                    parts.push(format!("element {s}"));
                }
                if let Some(t) = &w.text {
                    parts.push(format!("text {t:?}"));
                }
                if w.network_idle {
                    parts.push("network idle".into());
                }
                format!("wait for {}", parts.join(" and "))
            }
            Step::AssertText(TextCheck::Page(t)) => format!("assert text {t:?}"),
            Step::AssertText(TextCheck::In { selector, text }) => {
                format!("assert text {text:?} in {selector}")
            }
            Step::AssertVisible(s) => format!("assert visible {s}"),
            Step::AssertUrl(UrlCheck::Contains(u)) => format!("assert URL contains {u}"),
            Step::AssertUrl(UrlCheck::Exact { equals }) => format!("assert URL is {equals}"),
            Step::AssertStatus(s) => format!("assert status {s}"),
            Step::AssertNoConsoleErrors(_) => "assert no console errors".into(),
            Step::Screenshot(n) => format!("screenshot {n}"),
        }
    }

    /// What the step expects, for bug reports.
    pub fn expected(&self) -> String {
        match self {
            Step::Navigate(u) => format!("{u} loads"),
            Step::Click(s) => format!("{s} can be clicked"),
            Step::Fill(f) => format!("{} accepts input", f.selector),
            Step::Select(f) => format!("{} offers {}", f.selector, f.value),
            Step::Press(p) => format!("{} is delivered", p.key),
            Step::WaitFor(_) => {
                self.describe().replacen("wait for ", "", 1) + " within the timeout"
            }
            Step::AssertText(TextCheck::Page(t)) => format!("the page shows {t:?}"),
            Step::AssertText(TextCheck::In { selector, text }) => {
                format!("{selector} shows {text:?}")
            }
            Step::AssertVisible(s) => format!("{s} is visible"),
            Step::AssertUrl(UrlCheck::Contains(u)) => format!("the URL contains {u}"),
            Step::AssertUrl(UrlCheck::Exact { equals }) => format!("the URL is {equals}"),
            Step::AssertStatus(s) => format!("the page answers HTTP {s}"),
            Step::AssertNoConsoleErrors(_) => "no console errors".into(),
            Step::Screenshot(_) => "a screenshot".into(),
        }
    }

    /// The selector the step acts on, if any (the suspected component).
    pub fn selector(&self) -> Option<&str> {
        match self {
            Step::Click(s) | Step::AssertVisible(s) => Some(s),
            Step::Fill(f) | Step::Select(f) => Some(&f.selector),
            Step::Press(p) => p.selector.as_deref(),
            Step::WaitFor(w) => w.selector.as_deref(),
            Step::AssertText(TextCheck::In { selector, .. }) => Some(selector),
            _ => None,
        }
    }
}

/// Expand `${VAR}` and `${VAR:-default}` from the environment. An unset variable
/// without a default is an error naming it.
pub fn expand(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (std::env::var(name), default) {
            (Ok(v), _) if !v.is_empty() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            _ => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A flow as loaded, with where it came from.
#[derive(Debug, Clone)]
pub struct FlowFile {
    /// The file.
    pub path: PathBuf,
    /// The flow.
    pub flow: Flow,
    /// 1-based line of each step in the file.
    pub step_lines: Vec<usize>,
}

/// A located flow-file error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct FlowError {
    /// The file.
    pub path: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Lines of the items of the top-level `steps:` list.
fn step_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut in_steps = false;
    let mut indent = None;
    for (i, l) in text.lines().enumerate() {
        if l.starts_with("steps:") {
            in_steps = true;
            continue;
        }
        if !in_steps || l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        let lead = l.len() - l.trim_start().len();
        if lead == 0 && !l.starts_with('-') {
            break;
        }
        if l.trim_start().starts_with("- ") || l.trim_start() == "-" {
            let want = *indent.get_or_insert(lead);
            if lead == want {
                lines.push(i + 1);
            }
        }
    }
    lines
}

/// Parse and check one flow file's text.
pub fn parse(path: &str, text: &str) -> Result<FlowFile, Vec<FlowError>> {
    let at = |line: usize, column: usize, message: String| FlowError {
        path: path.to_string(),
        line,
        column,
        message,
    };
    let lines = step_lines(text);
    let flow: Flow = yaml_serde::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let message = e.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        // A bad step: find which one, so the error points at its line.
        if message.starts_with("steps")
            && let Ok(v) = yaml_serde::from_str::<yaml_serde::Value>(text)
            && let Some(steps) = v.get("steps").and_then(|s| s.as_sequence())
        {
            for (i, s) in steps.iter().enumerate() {
                if let Err(se) = yaml_serde::from_value::<Step>(s.clone()) {
                    let m = se.to_string();
                    let m = m.split(" at line ").next().unwrap_or(&m);
                    return vec![at(
                        lines.get(i).copied().unwrap_or(line),
                        3,
                        format!("steps[{i}]: {m}"),
                    )];
                }
            }
        }
        vec![at(line, column, message)]
    })?;
    let line_of = |i: usize| lines.get(i).copied().unwrap_or(0);
    let field_line = |key: &str| {
        text.lines()
            .position(|l| l.starts_with(&format!("{key}:")))
            .map_or(0, |i| i + 1)
    };
    let mut errors = Vec::new();
    if flow.name.trim().is_empty() {
        errors.push(at(field_line("name"), 1, "name: must not be empty".into()));
    }
    let base = flow.base_url.trim();
    let base_ok =
        base.starts_with("http://") || base.starts_with("https://") || base.starts_with("${");
    if !base_ok {
        errors.push(at(
            field_line("base_url"),
            1,
            format!("base_url: {base:?} is not an http(s) URL"),
        ));
    }
    match (&flow.every, &flow.cron) {
        (Some(_), Some(_)) => errors.push(at(
            field_line("cron"),
            1,
            "cron: give either every or cron, not both".into(),
        )),
        (None, Some(c)) => {
            if let Err(e) = Cron::parse(c) {
                errors.push(at(field_line("cron"), 1, format!("cron: {e}")));
            }
        }
        (Some(d), None) if d.is_zero() => errors.push(at(
            field_line("every"),
            1,
            "every: must be more than 0".into(),
        )),
        _ => {}
    }
    if flow.steps.is_empty() {
        errors.push(at(
            field_line("steps"),
            1,
            "steps: a flow needs at least one step".into(),
        ));
    }
    for (i, step) in flow.steps.iter().enumerate() {
        let here = |m: String| at(line_of(i), 1, format!("steps[{i}] ({}): {m}", step.kind()));
        if let Some(s) = step.selector()
            && (s.trim().is_empty() || s.trim() == "text=")
        {
            errors.push(here("the selector is empty".into()));
        }
        match step {
            Step::WaitFor(w) if w.selector.is_none() && w.text.is_none() && !w.network_idle => {
                errors.push(here("give a selector, a text or network_idle: true".into()))
            }
            Step::AssertStatus(s) if !(100..=599).contains(s) => {
                errors.push(here(format!("{s} is not an HTTP status")))
            }
            Step::Navigate(u) if u.trim().is_empty() => {
                errors.push(here("the URL is empty".into()))
            }
            Step::Press(p) if p.key.trim().is_empty() => {
                errors.push(here("the key is empty".into()))
            }
            Step::Screenshot(n)
                if n.is_empty()
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                errors.push(here(format!(
                    "{n:?}: screenshot names use letters, digits, - and _"
                )))
            }
            _ => {}
        }
        // An unclosed ${ is an error now, not at run time.
        let text = serde_json::to_string(step).unwrap_or_default();
        if text.matches("${").count() > text.matches('}').count() {
            errors.push(here("unclosed ${ in a value".into()));
        }
    }
    if errors.is_empty() {
        Ok(FlowFile {
            path: PathBuf::from(path),
            flow,
            step_lines: lines,
        })
    } else {
        Err(errors)
    }
}

/// Load flow files from files and directories (`*.yaml`, `*.yml`, sorted). Errors from
/// every file are collected; duplicate flow names are errors too.
pub fn load(paths: &[PathBuf]) -> Result<Vec<FlowFile>, Vec<FlowError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut v: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|f| {
                            matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                        })
                        .collect();
                    v.sort();
                    files.extend(v);
                }
                Err(e) => errors.push(FlowError {
                    path: p.display().to_string(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read the directory: {e}"),
                }),
            }
        } else {
            files.push(p.clone());
        }
    }
    let mut flows: Vec<FlowFile> = Vec::new();
    for f in files {
        let name = f.display().to_string();
        match std::fs::read_to_string(&f) {
            Ok(text) => match parse(&name, &text) {
                Ok(ff) => {
                    if let Some(other) = flows.iter().find(|o| o.flow.name == ff.flow.name) {
                        errors.push(FlowError {
                            path: name,
                            line: 1,
                            column: 1,
                            message: format!(
                                "name: {:?} is already used by {}",
                                ff.flow.name,
                                other.path.display()
                            ),
                        });
                    } else {
                        flows.push(ff);
                    }
                }
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(FlowError {
                path: name,
                line: 0,
                column: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(flows)
    } else {
        Err(errors)
    }
}

/// Join a navigation target to the base URL.
pub fn join(base: &str, target: &str) -> String {
    if target.starts_with("http://") || target.starts_with("https://") {
        return target.to_string();
    }
    let base = base.trim_end_matches('/');
    if target.starts_with('/') {
        // Keep the scheme and host only.
        let host_end = base
            .find("://")
            .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(base.len());
        format!("{}{target}", &base[..host_end])
    } else {
        format!("{base}/{target}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: checkout
description: buy something
priority: critical
base_url: http://127.0.0.1:8080
every: 6h
steps:
  - navigate: /login
  - fill: { selector: \"#user\", value: demo }
  - fill:
      selector: \"#password\"
      value: ${DEMO_PASSWORD:-secret}
  - click: text=Sign in
  - wait_for: { selector: \"#products\", timeout: 5s }
  - wait_for: { network_idle: true }
  - select: { selector: \"#qty\", value: \"2\" }
  - press: { key: Enter }
  - assert_text: Welcome
  - assert_text: { selector: \"#cart\", text: 1 item }
  - assert_visible: \"#receipt\"
  - assert_url: /done
  - assert_url: { equals: http://127.0.0.1:8080/done }
  - assert_status: 200
  - assert_no_console_errors: true
  - screenshot: after-checkout
";

    #[test]
    fn every_step_kind_parses_with_its_line() {
        let f = parse("f.yaml", GOOD).expect("valid");
        assert_eq!(f.flow.steps.len(), 16);
        assert_eq!(f.step_lines[0], 7);
        assert_eq!(f.step_lines[2], 9);
        assert_eq!(f.step_lines[3], 12);
        assert_eq!(f.flow.every, Some(Duration::from_secs(6 * 3600)));
        assert!(matches!(
            f.flow.steps[8],
            Step::AssertText(TextCheck::Page(_))
        ));
        assert!(matches!(
            f.flow.steps[9],
            Step::AssertText(TextCheck::In { .. })
        ));
        // Secrets stay unexpanded in descriptions.
        assert_eq!(
            f.flow.steps[2].describe(),
            "fill #password with ${DEMO_PASSWORD:-secret}"
        );
    }

    #[test]
    fn errors_are_located() {
        let cases = [
            (
                GOOD.replace("  - click: text=Sign in", "  - clik: text=Sign in"),
                12,
                "unknown variant `clik`",
            ),
            (
                GOOD.replace("priority: critical", "priority: urgent"),
                3,
                "unknown variant `urgent`",
            ),
            (
                GOOD.replace("  - assert_status: 200", "  - assert_status: 999"),
                22,
                "steps[13] (assert_status): 999 is not an HTTP status",
            ),
            (
                GOOD.replace("  - wait_for: { network_idle: true }", "  - wait_for: {}"),
                14,
                "give a selector",
            ),
            (
                GOOD.replace("  - click: text=Sign in", "  - click: \"\""),
                12,
                "the selector is empty",
            ),
            (
                GOOD.replace("every: 6h", "cron: \"61 * * * *\""),
                5,
                "cron:",
            ),
            (
                GOOD.replace("base_url: http://127.0.0.1:8080", "base_url: ftp://x"),
                4,
                "not an http(s) URL",
            ),
        ];
        for (text, line, want) in cases {
            let e = parse("f.yaml", &text).expect_err(want);
            assert!(
                e.iter()
                    .any(|e| e.line == line && e.to_string().contains(want)),
                "{want}: {e:?}"
            );
            assert!(e[0].to_string().starts_with("f.yaml:"), "{e:?}");
        }
    }

    #[test]
    fn variables_expand_from_the_environment() {
        assert_eq!(
            expand("a ${MEDIC_QA_UNSET_X:-dflt} b").expect("default"),
            "a dflt b"
        );
        let e = expand("${MEDIC_QA_UNSET_Y}").expect_err("unset");
        assert!(e.contains("MEDIC_QA_UNSET_Y"));
        assert_eq!(expand("plain").expect("plain"), "plain");
    }

    #[test]
    fn navigation_targets_join_the_base() {
        assert_eq!(join("http://h:1/app/", "/login"), "http://h:1/login");
        assert_eq!(join("http://h:1/app", "next"), "http://h:1/app/next");
        assert_eq!(join("http://h:1", "https://x/y"), "https://x/y");
    }
}
