//! Ticket text: one structured [`Body`] per ticket or comment, rendered as Markdown
//! (GitHub, the store, webhooks), Atlassian Document Format (Jira Cloud) or Jira wiki
//! text (Jira Server/DC). Sample lines always go into code blocks, so log text is never
//! read as markup.

use serde_json::{Value, json};

use crate::event::{Escalated, IncidentState, format_rfc3339};

/// A block of ticket text.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "text")]
pub enum Block {
    /// A heading.
    Heading(String),
    /// A paragraph.
    Para(String),
    /// Key-value facts, as a list.
    Facts(Vec<(String, String)>),
    /// Preformatted text (log samples, stack traces).
    Code(String),
}

/// Ticket or comment text.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Body(pub Vec<Block>);

impl Body {
    /// Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for b in &self.0 {
            match b {
                Block::Heading(h) => out.push_str(&format!("### {h}\n\n")),
                Block::Para(p) => out.push_str(&format!("{p}\n\n")),
                Block::Facts(f) => {
                    for (k, v) in f {
                        out.push_str(&format!("- **{k}:** {v}\n"));
                    }
                    out.push('\n');
                }
                Block::Code(c) => {
                    // A fence longer than any backtick run inside, so samples cannot end it.
                    let longest = c.split(|ch| ch != '`').map(str::len).max().unwrap_or(0);
                    let fence = "`".repeat(longest.max(2) + 1);
                    out.push_str(&format!("{fence}\n{c}\n{fence}\n\n"));
                }
            }
        }
        out.trim_end().to_string() + "\n"
    }

    /// Jira wiki markup (REST v2).
    pub fn wiki(&self) -> String {
        let mut out = String::new();
        for b in &self.0 {
            match b {
                Block::Heading(h) => out.push_str(&format!("h3. {h}\n\n")),
                Block::Para(p) => out.push_str(&format!("{p}\n\n")),
                Block::Facts(f) => {
                    for (k, v) in f {
                        out.push_str(&format!("* *{k}:* {v}\n"));
                    }
                    out.push('\n');
                }
                Block::Code(c) => {
                    out.push_str(&format!(
                        "{{noformat}}\n{}\n{{noformat}}\n\n",
                        c.replace("{noformat}", "{ noformat}")
                    ));
                }
            }
        }
        out.trim_end().to_string() + "\n"
    }

    /// Atlassian Document Format (REST v3).
    pub fn adf(&self) -> Value {
        let text = |s: &str| json!({"type": "text", "text": s});
        let mut content = Vec::new();
        for b in &self.0 {
            match b {
                Block::Heading(h) => content.push(json!({
                    "type": "heading", "attrs": {"level": 3}, "content": [text(h)]
                })),
                Block::Para(p) if !p.is_empty() => content.push(json!({
                    "type": "paragraph", "content": [text(p)]
                })),
                Block::Para(_) => {}
                Block::Facts(f) => {
                    let items: Vec<Value> = f
                        .iter()
                        .map(|(k, v)| {
                            json!({"type": "listItem", "content": [{
                                "type": "paragraph",
                                "content": [
                                    {"type": "text", "text": format!("{k}: "), "marks": [{"type": "strong"}]},
                                    text(if v.is_empty() { "-" } else { v })
                                ]
                            }]})
                        })
                        .collect();
                    if !items.is_empty() {
                        content.push(json!({"type": "bulletList", "content": items}));
                    }
                }
                Block::Code(c) if !c.is_empty() => content.push(json!({
                    "type": "codeBlock", "attrs": {}, "content": [text(c)]
                })),
                Block::Code(_) => {}
            }
        }
        json!({"type": "doc", "version": 1, "content": content})
    }
}

fn time(ms: u64) -> String {
    let mut s = format_rfc3339(ms as i64 * 1_000_000);
    // Milliseconds are enough for people.
    if let Some(dot) = s.find('.') {
        s.replace_range(dot + 4..s.len() - 1, "");
    }
    s
}

/// The marker line that carries an action's idempotency key.
pub fn marker(idem: &str) -> String {
    format!("medic-action: {idem}")
}

/// The body of a new ticket.
pub fn ticket_body(e: &Escalated, idem: &str, link: Option<&str>) -> Body {
    let inc = &e.incident;
    let c = &e.classified.classification;
    let mut b = vec![Block::Para(c.description.clone())];
    let mut facts = vec![
        ("Severity".to_string(), c.severity.as_str().to_string()),
        ("Type".to_string(), c.error_type.as_str().to_string()),
        ("Service".to_string(), inc.key.service.to_string()),
        ("Component".to_string(), c.affected_component.clone()),
        ("Count".to_string(), inc.count.to_string()),
        ("First seen".to_string(), time(inc.first_seen_ms)),
        ("Last seen".to_string(), time(inc.last_seen_ms)),
        ("Rules".to_string(), inc.rules.join(", ")),
        ("Sources".to_string(), inc.sources.join(", ")),
        ("Fingerprint".to_string(), inc.key.fingerprint.to_string()),
        ("Incident".to_string(), inc.id.clone()),
    ];
    let mut by = e.classified.classifier.clone();
    if let Some(f) = &e.classified.fallback {
        by.push_str(&format!(" (fallback: {f})"));
    }
    facts.push((
        "Classified by".to_string(),
        format!("{by}, confidence {:.2}", c.confidence),
    ));
    if inc.regression {
        facts.push(("Regression".to_string(), "yes".to_string()));
    }
    b.push(Block::Facts(facts));
    if !c.suggested_fix.is_empty() {
        b.push(Block::Heading("Suggested fix".into()));
        b.push(Block::Para(c.suggested_fix.clone()));
    }
    b.push(Block::Heading("Template".into()));
    b.push(Block::Code(inc.template.clone()));
    samples(&mut b, e, usize::MAX);
    if let Some(l) = link {
        b.push(Block::Para(format!(
            "Details: {l}/api/incidents/{}",
            inc.id
        )));
    }
    b.push(Block::Para(marker(idem)));
    Body(b)
}

fn samples(b: &mut Vec<Block>, e: &Escalated, max: usize) {
    let s = &e.incident.samples;
    if s.is_empty() {
        return;
    }
    b.push(Block::Heading("Samples".into()));
    let skip = s.len().saturating_sub(max);
    for x in &s[skip..] {
        b.push(Block::Code(format!("{}  {}", time(x.time_ms), x.text)));
    }
}

/// The body of a comment for a notification on an existing ticket.
pub fn note_body(e: &Escalated, idem: &str) -> Body {
    let inc = &e.incident;
    let head = match inc.state {
        IncidentState::Reopened => format!(
            "Regression: this fired again after it had resolved. {} records since {} ({} in total).",
            inc.count_in_window,
            time(inc.first_seen_ms),
            inc.count
        ),
        IncidentState::Resolved => format!(
            "Quiet since {}: no records for the resolve period. {} records in total.",
            time(inc.last_seen_ms),
            inc.count
        ),
        _ => format!(
            "Seen again in {}: {} new records, {} in total, last at {}.",
            inc.key.service,
            inc.count_in_window,
            inc.count,
            time(inc.last_seen_ms)
        ),
    };
    let mut b = vec![Block::Para(head)];
    if inc.state != IncidentState::Resolved {
        samples(&mut b, e, 2);
    }
    b.push(Block::Para(marker(idem)));
    Body(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_fences_outlast_backticks_in_samples() {
        let b = Body(vec![Block::Code("a ``` b".into())]);
        let md = b.markdown();
        assert!(md.starts_with("````\n"), "{md}");
    }

    #[test]
    fn adf_is_a_versioned_doc_of_known_nodes() {
        let b = Body(vec![
            Block::Heading("H".into()),
            Block::Para("p".into()),
            Block::Facts(vec![("k".into(), "v".into())]),
            Block::Code("x\ny".into()),
        ]);
        let v = b.adf();
        assert_eq!(v["type"], "doc");
        assert_eq!(v["version"], 1);
        let kinds: Vec<&str> = v["content"]
            .as_array()
            .expect("content")
            .iter()
            .map(|n| n["type"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["heading", "paragraph", "bulletList", "codeBlock"]);
        assert_eq!(v["content"][3]["content"][0]["text"], "x\ny");
    }
}
