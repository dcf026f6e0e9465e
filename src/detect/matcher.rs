//! The compiled rule set: every literal of every rule in one Aho-Corasick automaton, and
//! regexes run only for rules whose literals hit (or that have no literal part).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use regex::Regex;
use regex_automata::meta;

use super::rules::{LoadedFile, Rule, RuleError, Selector};
use super::scan::Scanner;
use crate::event::{Detection, Event, Level, Origin, RuleIdx, Severity};

/// At most this many `all` literals per matcher: their hits are tracked in a u64 mask.
const MAX_ALL: usize = 64;

/// A validated, compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    /// The rule as written.
    pub rule: Rule,
    /// Index of the file it came from, in [`RuleSet::files`].
    pub file: usize,
    /// Position in that file.
    pub index_in_file: usize,
    needs_any: bool,
    all_mask: u64,
    regex: Option<RuleRegex>,
    exclude_regex: Option<RuleRegex>,
    /// The id and labels as every hit of the rule carries them: shared, not copied.
    shared_id: Arc<str>,
    shared_labels: Vec<(Arc<str>, Arc<str>)>,
}

impl CompiledRule {
    /// The rule id.
    pub fn id(&self) -> &str {
        &self.rule.id
    }
    /// The rule id, shared.
    pub fn shared_id(&self) -> &Arc<str> {
        &self.shared_id
    }
    /// The rule's labels, shared.
    pub fn shared_labels(&self) -> &[(Arc<str>, Arc<str>)] {
        &self.shared_labels
    }
    /// The rule severity.
    pub fn severity(&self) -> Severity {
        self.rule.severity
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Any,
    All(u8),
    Exclude,
}

#[derive(Debug)]
struct Use {
    rule: RuleIdx,
    role: Role,
    /// For case-sensitive literals: the exact bytes to confirm, since the shared automaton
    /// matches ASCII case-insensitively.
    exact: Option<Box<[u8]>>,
    /// The literal must stand as a whole word.
    whole_word: bool,
}

/// All rules, compiled once. Shared read-only by every [`Detector`].
#[derive(Debug)]
pub struct RuleSet {
    files: Vec<LoadedFile>,
    rules: Vec<CompiledRule>,
    automaton: Option<Scanner>,
    uses: Vec<Vec<Use>>,
    /// Rules with no literal requirement: evaluated on every event.
    always: Vec<RuleIdx>,
    literal_count: usize,
}

impl RuleSet {
    /// Compile rules from loaded files. Returns every semantic error found, each located.
    pub fn compile(files: Vec<LoadedFile>) -> Result<RuleSet, Vec<RuleError>> {
        match RuleSet::compile_lenient(files) {
            (Some(set), errors) if errors.is_empty() => Ok(set),
            (_, errors) => Err(errors),
        }
    }

    /// Compile what is valid and report the rest: invalid rules are left out of the set
    /// (so `check-rules` can still run the other rules' examples). `None` only when the
    /// automaton itself cannot be built.
    pub fn compile_lenient(files: Vec<LoadedFile>) -> (Option<RuleSet>, Vec<RuleError>) {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        let mut seen: HashMap<String, (usize, usize)> = HashMap::new();
        let mut literal_ids: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut uses: Vec<Vec<Use>> = Vec::new();
        let mut always = Vec::new();

        for (fi, file) in files.iter().enumerate() {
            for (ri, rule) in file.rules.iter().enumerate() {
                let err = |field: String, message: String| {
                    let (line, column) = file.locate(ri, &field);
                    RuleError {
                        file: file.path.clone(),
                        line,
                        column,
                        field: format!("rules[{ri}].{field}"),
                        message,
                    }
                };
                let before = errors.len();
                if rule.id.trim().is_empty() {
                    errors.push(err("id".into(), "must not be empty".into()));
                } else if !rule
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                {
                    errors.push(err(
                        "id".into(),
                        format!(
                            "{:?} may only use letters, digits, '-', '_' and '.'",
                            rule.id
                        ),
                    ));
                } else if let Some((pf, pr)) = seen.get(&rule.id) {
                    let (line, _) = files[*pf].locate(*pr, "id");
                    errors.push(err(
                        "id".into(),
                        format!(
                            "duplicate id {:?}, first defined at {}:{}",
                            rule.id,
                            files[*pf].path.display(),
                            line
                        ),
                    ));
                } else {
                    seen.insert(rule.id.clone(), (fi, ri));
                }
                if rule.description.trim().is_empty() {
                    errors.push(err("description".into(), "must not be empty".into()));
                }
                if rule.matcher.is_empty() {
                    errors.push(err(
                        "match".into(),
                        "needs at least one of `any`, `all` or `regex`".into(),
                    ));
                }
                if rule.matcher.all.len() > MAX_ALL {
                    errors.push(err(
                        "match.all".into(),
                        format!("at most {MAX_ALL} literals"),
                    ));
                }
                for (name, m) in [
                    ("match", Some(&rule.matcher)),
                    ("exclude", rule.exclude.as_ref()),
                ] {
                    let Some(m) = m else { continue };
                    for (list, lits) in [("any", &m.any), ("all", &m.all)] {
                        if let Some(i) = lits.iter().position(|l| l.is_empty()) {
                            errors.push(err(format!("{name}.{list}[{i}]"), "empty literal".into()));
                        }
                    }
                }
                // A rule with literals runs its regexes only on lines they picked.
                let gated = !rule.matcher.any.is_empty() || !rule.matcher.all.is_empty();
                let regex = RuleRegex::new(rule.matcher.regex.as_deref(), gated)
                    .map_err(|e| errors.push(err("match.regex".into(), e)))
                    .ok()
                    .flatten();
                let exclude_regex = RuleRegex::new(
                    rule.exclude.as_ref().and_then(|m| m.regex.as_deref()),
                    gated,
                )
                .map_err(|e| errors.push(err("exclude.regex".into(), e)))
                .ok()
                .flatten();
                if let Some(ex) = &rule.exclude
                    && !ex.all.is_empty()
                {
                    errors.push(err(
                        "exclude.all".into(),
                        "exclude takes `any` and `regex`; `all` is not supported there".into(),
                    ));
                }
                if let Some(inc) = &rule.incident {
                    if inc.threshold.is_some_and(|t| t.count == 0) {
                        errors.push(err(
                            "incident.threshold".into(),
                            "count must be at least 1".into(),
                        ));
                    }
                    let mut seen_parts = inc.group_by.clone();
                    seen_parts.dedup();
                    if seen_parts.len() != inc.group_by.len() {
                        errors.push(err(
                            "incident.group_by".into(),
                            "lists a key part twice".into(),
                        ));
                    }
                }
                for (k, _) in rule.select.labels.iter().filter(|(k, _)| k.is_empty()) {
                    errors.push(err(
                        "select.labels".into(),
                        format!("empty label key {k:?}"),
                    ));
                }
                if errors.len() != before {
                    continue;
                }

                let idx = rules.len() as RuleIdx;
                let mut add = |lit: &str, role: Role, ci: bool, whole_word: bool| {
                    let folded = lit.as_bytes().to_ascii_lowercase();
                    let pid = *literal_ids.entry(folded.clone()).or_insert_with(|| {
                        literals.push(folded);
                        uses.push(Vec::new());
                        literals.len() - 1
                    });
                    let exact = (!ci && lit.bytes().any(|b| b.is_ascii_alphabetic()))
                        .then(|| lit.as_bytes().into());
                    uses[pid].push(Use {
                        rule: idx,
                        role,
                        exact,
                        whole_word,
                    });
                };
                let (ci, ww) = (rule.matcher.case_insensitive, rule.matcher.whole_words);
                for l in &rule.matcher.any {
                    add(l, Role::Any, ci, ww);
                }
                for (i, l) in rule.matcher.all.iter().enumerate() {
                    add(l, Role::All(i as u8), ci, ww);
                }
                if let Some(ex) = &rule.exclude {
                    for l in &ex.any {
                        add(l, Role::Exclude, ex.case_insensitive, ex.whole_words);
                    }
                }
                let all_n = rule.matcher.all.len();
                let all_mask = if all_n == MAX_ALL {
                    u64::MAX
                } else {
                    (1u64 << all_n) - 1
                };
                if rule.matcher.any.is_empty() && all_n == 0 {
                    always.push(idx);
                }
                rules.push(CompiledRule {
                    rule: rule.clone(),
                    file: fi,
                    index_in_file: ri,
                    needs_any: !rule.matcher.any.is_empty(),
                    all_mask,
                    regex,
                    exclude_regex,
                    shared_id: rule.id.as_str().into(),
                    shared_labels: rule
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                        .collect(),
                });
            }
        }
        let automaton = if literals.is_empty() {
            None
        } else {
            match Scanner::build(&literals) {
                Ok(a) => Some(a),
                Err(e) => {
                    errors.push(RuleError {
                        file: files.first().map(|f| f.path.clone()).unwrap_or_default(),
                        line: 0,
                        column: 0,
                        field: String::new(),
                        message: format!("cannot build the literal automaton: {e}"),
                    });
                    return (None, errors);
                }
            }
        };
        let set = RuleSet {
            literal_count: literals.len(),
            files,
            rules,
            automaton,
            uses,
            always,
        };
        (Some(set), errors)
    }

    /// The compiled rules, in load order.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// A rule by index.
    pub fn rule(&self, idx: RuleIdx) -> &CompiledRule {
        &self.rules[idx as usize]
    }

    /// The files the rules came from.
    pub fn files(&self) -> &[LoadedFile] {
        &self.files
    }

    /// Distinct literals in the shared automaton.
    pub fn literal_count(&self) -> usize {
        self.literal_count
    }

    /// Rules that run their regex on every event, having no literal part.
    pub fn regex_only_count(&self) -> usize {
        self.always.len()
    }
}

/// A rule's compiled regex.
///
/// The regex crate first scans for the regex's literal prefixes, and starts its DFA at
/// each. Where those prefixes include a single byte, the scan stops at nearly every
/// position and the restarts cost more than one pass of the DFA: the shipped `http-4xx`
/// regex's prefixes are `H h S s C c 4`, and without them it runs in 197 instead of 470 ns
/// on a 128-byte line, 6.8 instead of 15.9 µs on 4 KiB. For a rule whose literals already
/// picked the line, such a regex is built without the prefilter. A rule with no literals
/// keeps it: there the prefilter is the literal part that decides whether the regex runs.
#[derive(Debug)]
enum RuleRegex {
    /// As the regex crate builds it.
    Prefiltered(Regex),
    /// The same regex (the regex crate's defaults: Unicode, UTF-8, the size limit) without
    /// the prefilter.
    Scan(meta::Regex),
}

impl RuleRegex {
    /// Compile `src` (if any); `gated` when it runs only on lines its rule's literals hit.
    /// `case_insensitive` is for literals only: a regex says `(?i)` itself, so that
    /// character classes like `[A-Z]` keep their meaning.
    fn new(src: Option<&str>, gated: bool) -> Result<Option<RuleRegex>, String> {
        let Some(src) = src else { return Ok(None) };
        if src.is_empty() {
            return Err("empty regex".into());
        }
        const SIZE_LIMIT: usize = 1 << 20;
        let prefiltered = regex::RegexBuilder::new(src)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| {
                // The regex crate's messages span several lines; keep them on one.
                e.to_string()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })?;
        if gated && one_byte_prefix(src) {
            // It parsed above, so this fails only on a limit the first build did not hit;
            // then the regex crate's build serves.
            let scan = meta::Regex::builder()
                .configure(
                    meta::Config::new()
                        .auto_prefilter(false)
                        .nfa_size_limit(Some(SIZE_LIMIT)),
                )
                .build(src);
            if let Ok(scan) = scan {
                return Ok(Some(RuleRegex::Scan(scan)));
            }
        }
        Ok(Some(RuleRegex::Prefiltered(prefiltered)))
    }

    #[inline]
    fn is_match(&self, text: &str) -> bool {
        match self {
            RuleRegex::Prefiltered(re) => re.is_match(text),
            RuleRegex::Scan(re) => re.is_match(text),
        }
    }
}

/// Whether the literal prefixes the regex crate would scan for include one of a single
/// byte (extracted the way its meta engine does).
fn one_byte_prefix(src: &str) -> bool {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let Ok(hir) = regex_syntax::Parser::new().parse(src) else {
        return false;
    };
    let mut prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    prefixes.optimize_for_prefix_by_preference();
    matches!(prefixes.min_literal_len(), Some(0 | 1))
}

#[derive(Debug, Clone, Copy, Default)]
struct Hits {
    stamp: u32,
    any: bool,
    all: u64,
    excluded: bool,
}

/// Counters of the detect stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectStats {
    /// Events checked.
    pub events: u64,
    /// Events with at least one rule hit.
    pub hits: u64,
    /// Regex confirmations run.
    pub regex_runs: u64,
    /// Hits per rule, indexed by [`RuleIdx`].
    pub per_rule: Vec<u64>,
}

/// Per-thread matching state over a shared [`RuleSet`]. Reuses its buffers: no allocation
/// per event.
#[derive(Debug)]
pub struct Detector<'r> {
    set: &'r RuleSet,
    hits: Vec<Hits>,
    touched: Vec<RuleIdx>,
    stamp: u32,
    stats: DetectStats,
}

impl<'r> Detector<'r> {
    /// A detector over `set`.
    pub fn new(set: &'r RuleSet) -> Detector<'r> {
        Detector {
            set,
            hits: vec![Hits::default(); set.rules.len()],
            touched: Vec::with_capacity(16),
            stamp: 0,
            stats: DetectStats {
                per_rule: vec![0; set.rules.len()],
                ..DetectStats::default()
            },
        }
    }

    /// The rule set.
    pub fn rules(&self) -> &'r RuleSet {
        self.set
    }

    /// Counters so far.
    pub fn stats(&self) -> &DetectStats {
        &self.stats
    }

    /// Match one event from `origin`; `out` is cleared and filled.
    pub fn detect(&mut self, ev: &Event, origin: &Origin, out: &mut Detection) {
        out.rules.clear();
        out.severity = None;
        self.stats.events += 1;
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Wrapped: old stamps could alias the new one.
            self.hits.iter_mut().for_each(|h| h.stamp = 0);
            self.stamp = 1;
        }
        self.touched.clear();
        let text = ev.text.as_bytes();
        if let Some(scanner) = &self.set.automaton {
            let (uses, hits, touched, stamp) = (
                &self.set.uses,
                &mut self.hits,
                &mut self.touched,
                self.stamp,
            );
            scanner.for_each(text, |pattern, start, end| {
                let span = &text[start..end];
                for u in &uses[pattern] {
                    if u.exact.as_deref().is_some_and(|e| e != span) {
                        continue;
                    }
                    if u.whole_word && !is_whole_word(text, start, end) {
                        continue;
                    }
                    let h = &mut hits[u.rule as usize];
                    if h.stamp != stamp {
                        *h = Hits {
                            stamp,
                            ..Hits::default()
                        };
                        touched.push(u.rule);
                    }
                    match u.role {
                        Role::Any => h.any = true,
                        Role::All(i) => h.all |= 1 << i,
                        Role::Exclude => h.excluded = true,
                    }
                }
            });
        }
        for &r in self.touched.iter().chain(&self.set.always) {
            let rule = &self.set.rules[r as usize];
            let h = &self.hits[r as usize];
            // Touched rules are fresh; an `always` rule may be untouched (no literal hit at
            // all), or touched by an exclude literal and so visited twice.
            let fresh = h.stamp == self.stamp;
            if out.rules.contains(&r) {
                continue;
            }
            let (any, all, excluded) = if fresh {
                (h.any, h.all, h.excluded)
            } else {
                (false, 0, false)
            };
            if excluded || (rule.needs_any && !any) || all & rule.all_mask != rule.all_mask {
                continue;
            }
            if !level_ok(&rule.rule.level, rule.rule.level_required, ev.level)
                || !selector_ok(&rule.rule.select, origin)
            {
                continue;
            }
            if let Some(re) = &rule.regex {
                self.stats.regex_runs += 1;
                if !re.is_match(&ev.text) {
                    continue;
                }
            }
            if let Some(re) = &rule.exclude_regex {
                self.stats.regex_runs += 1;
                if re.is_match(&ev.text) {
                    continue;
                }
            }
            out.rules.push(r);
        }
        if out.rules.is_empty() {
            return;
        }
        let set = self.set;
        out.rules.sort_by(|a, b| {
            set.rules[*b as usize]
                .severity()
                .cmp(&set.rules[*a as usize].severity())
                .then(a.cmp(b))
        });
        out.severity = Some(set.rules[out.rules[0] as usize].severity());
        self.stats.hits += 1;
        for &r in &out.rules {
            self.stats.per_rule[r as usize] += 1;
        }
    }
}

fn is_whole_word(text: &[u8], start: usize, end: usize) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    (start == 0 || !word(text[start - 1])) && text.get(end).is_none_or(|b| !word(*b))
}

fn level_ok(levels: &[Level], required: bool, level: Option<Level>) -> bool {
    if levels.is_empty() {
        return true;
    }
    match level {
        Some(l) => levels.contains(&l),
        None => !required,
    }
}

fn selector_ok(s: &Selector, o: &Origin) -> bool {
    if s.is_empty() {
        return true;
    }
    (s.source.is_empty() || s.source.iter().any(|k| k == o.kind))
        && (s.container.is_empty() || s.container.iter().any(|g| glob(g, &o.name)))
        && (s.image.is_empty()
            || o.image
                .as_deref()
                .is_some_and(|i| s.image.iter().any(|g| glob(g, i))))
        && labels_ok(&s.labels, &o.labels)
}

fn labels_ok(want: &BTreeMap<String, String>, have: &[(String, String)]) -> bool {
    want.iter()
        .all(|(k, g)| have.iter().any(|(hk, hv)| hk == k && glob(g, hv)))
}

/// Glob match with `*` (any run) and `?` (one char).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_set_with_a_single_byte_is_found() {
        let http_4xx = r#"(?i-u)(?:HTTP/\d|\bstatus\s*=\s*)(4\d\d)\b|\b(4\d\d)\s+(?:Not Found)"#;
        assert!(one_byte_prefix(http_4xx));
        assert!(one_byte_prefix("x|yz"));
        // Three-byte prefixes, and no finite prefix set at all.
        assert!(!one_byte_prefix(r"(?i-u)\btimeout\s*=|\bset\s+timeout"));
        assert!(!one_byte_prefix(r"\s-\s|\w+Error"));
    }

    #[test]
    fn only_literal_gated_regexes_with_one_byte_prefixes_drop_the_prefilter() {
        let set = crate::detect::load_embedded().expect("embedded rules compile");
        let by_id = |id: &str| {
            set.rules()
                .iter()
                .find(|r| r.id() == id)
                .unwrap_or_else(|| panic!("shipped rule {id}"))
        };
        assert!(matches!(by_id("http-4xx").regex, Some(RuleRegex::Scan(_))));
        assert!(matches!(
            by_id("timeout").exclude_regex,
            Some(RuleRegex::Prefiltered(_))
        ));
        let ungated = RuleRegex::new(Some("x|yz"), false).expect("compiles");
        assert!(matches!(ungated, Some(RuleRegex::Prefiltered(_))));
    }

    #[test]
    fn both_builds_agree_on_every_shipped_example() {
        let set = crate::detect::load_embedded().expect("embedded rules compile");
        let mut compared = 0;
        for rule in set.rules() {
            let examples = &rule.rule.examples;
            let sources = [
                rule.rule.matcher.regex.as_deref(),
                rule.rule.exclude.as_ref().and_then(|e| e.regex.as_deref()),
            ];
            for src in sources.into_iter().flatten() {
                let plain = Regex::new(src).expect("shipped regex compiles");
                let Some(RuleRegex::Scan(scan)) =
                    RuleRegex::new(Some(src), true).expect("compiles")
                else {
                    continue;
                };
                for ex in examples.should_match.iter().chain(&examples.no_match) {
                    let line = ex.line();
                    assert_eq!(
                        scan.is_match(line),
                        plain.is_match(line),
                        "{src} on {line:?}"
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared >= 5, "only {compared} examples compared");
    }
}
