//! Detect: which rules an event matches.
//!
//! Owns the rule file schema ([`rules`]), compilation into one shared Aho-Corasick automaton
//! over every literal of every rule ([`RuleSet`]), per-thread matching ([`Detector`]), and
//! `medic check-rules` ([`check`]). A regex runs only for rules whose literals hit, or for
//! rules with no literal part (where the regex crate's own literal prefilter is the fast
//! path).

pub mod check;
mod matcher;
pub mod rules;
mod scan;
mod teddy;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use matcher::{CompiledRule, DetectStats, Detector, RuleSet, glob};
pub use rules::{Example, RuleError};

/// The rule files shipped in `rules/`, compiled into the binary so medic runs with its
/// defaults from any directory.
pub const EMBEDDED: &[(&str, &str)] = &[
    // Directory order, as `load` reads `rules/`.
    (
        "rules/generic.yaml",
        include_str!("../../rules/generic.yaml"),
    ),
    (
        "rules/network.yaml",
        include_str!("../../rules/network.yaml"),
    ),
    (
        "rules/runtime.yaml",
        include_str!("../../rules/runtime.yaml"),
    ),
    (
        "rules/storage.yaml",
        include_str!("../../rules/storage.yaml"),
    ),
];

/// Compile the embedded default rules.
pub fn load_embedded() -> Result<RuleSet, Vec<RuleError>> {
    let mut loaded = Vec::new();
    for (name, text) in EMBEDDED {
        loaded.push(
            rules::parse_file(std::path::Path::new(name), (*text).to_string())
                .map_err(|e| vec![e])?,
        );
    }
    RuleSet::compile(loaded)
}

/// Load and compile every rule file under `paths` (files, or directories of `*.yaml`).
/// All errors found are returned, each with file, line, column and field.
pub fn load(paths: &[PathBuf]) -> Result<RuleSet, Vec<RuleError>> {
    match load_lenient(paths) {
        (Some(set), errors) if errors.is_empty() => Ok(set),
        (_, errors) => Err(errors),
    }
}

/// Like [`load`], but also returns the rules that are valid when others are not, so
/// `check-rules` can run their examples.
pub fn load_lenient(paths: &[PathBuf]) -> (Option<RuleSet>, Vec<RuleError>) {
    let files = match rules::expand_paths(paths) {
        Ok(f) => f,
        Err(e) => return (None, vec![e]),
    };
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        match rules::load_file(f) {
            Ok(l) => loaded.push(l),
            Err(e) => errors.push(e),
        }
    }
    if loaded.is_empty() && errors.is_empty() {
        errors.push(RuleError {
            file: paths.first().cloned().unwrap_or_default(),
            line: 0,
            column: 0,
            field: String::new(),
            message: "no rule files (*.yaml, *.yml) found".into(),
        });
    }
    let (set, mut more) = RuleSet::compile_lenient(loaded);
    errors.append(&mut more);
    (set, errors)
}
