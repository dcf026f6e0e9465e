//! `medic check-rules`: validate rule files and run every rule's inline examples.

use super::matcher::{Detector, RuleSet};
use super::rules::{Example, RuleError};
use crate::event::{Detection, Event, Origin};

/// The outcome of checking a rule set.
#[derive(Debug, Default)]
pub struct Report {
    /// Rules checked.
    pub rules: usize,
    /// Examples run.
    pub examples: usize,
    /// Failures, each located at the example in its file.
    pub failures: Vec<RuleError>,
}

/// Build the event an example stands for: the line as its text and message.
pub fn example_event(ex: &Example) -> (Event, Origin) {
    let mut ev = Event::default();
    ev.text.push_str(ex.line());
    ev.message = 0..ev.text.len();
    ev.lines = 1;
    let mut origin = Origin {
        kind: "replay",
        name: "example".into(),
        ..Origin::default()
    };
    if let Example::Full {
        level, container, ..
    } = ex
    {
        ev.level = *level;
        if let Some(c) = container {
            origin.name = c.as_str().into();
            origin.kind = "docker";
        }
    }
    (ev, origin)
}

/// Run every rule's examples against the whole compiled set: a `match` example must be
/// matched by its rule, a `no_match` example must not be.
pub fn run_examples(set: &RuleSet) -> Report {
    let mut det = Detector::new(set);
    let mut out = Detection::default();
    let mut report = Report {
        rules: set.rules().len(),
        ..Report::default()
    };
    for (idx, rule) in set.rules().iter().enumerate() {
        let file = &set.files()[rule.file];
        let cases = rule
            .rule
            .examples
            .should_match
            .iter()
            .map(|e| (e, true))
            .chain(rule.rule.examples.no_match.iter().map(|e| (e, false)));
        for (ex, want) in cases {
            report.examples += 1;
            let (ev, origin) = example_event(ex);
            det.detect(&ev, &origin, &mut out);
            let got = out.rules.contains(&(idx as u32));
            if got != want {
                let list = if want { "match" } else { "no_match" };
                let (line, column) = file.locate_text(rule.index_in_file, list, ex.line());
                report.failures.push(RuleError {
                    file: file.path.clone(),
                    line,
                    column,
                    field: format!("rules[{}].examples.{list}", rule.index_in_file),
                    message: format!(
                        "rule {:?} {} {:?}",
                        rule.id(),
                        if want { "does not match" } else { "matches" },
                        ex.line()
                    ),
                });
            }
        }
    }
    report
}
