//! Jira: Cloud REST v3 (descriptions and comments in Atlassian Document Format) and
//! Server/Data Center REST v2 (wiki text). Tickets are found by the `medic-fp-<fp>` label
//! with JQL; reopen and resolve go through the issue's transitions.

use serde_json::{Value, json};

use super::config::{JiraAuth, JiraConfig, secret};
use super::render::Body;
use super::{NewTicket, Note, Sink, SinkError, TicketRef, TicketStatus, checked, json_body};

const NAME: &str = "jira";

/// A Jira project.
#[derive(Debug)]
pub struct Jira {
    cfg: JiraConfig,
    base: String,
    auth: String,
    http: reqwest::Client,
}

impl Jira {
    /// Build from the configuration, reading the token now.
    pub fn new(cfg: &JiraConfig, timeout: std::time::Duration) -> Result<Jira, SinkError> {
        if cfg.url.is_empty() || cfg.project.is_empty() {
            return Err(SinkError::Config(
                "tickets.jira: url and project are required".into(),
            ));
        }
        if !matches!(cfg.api_version, 2 | 3) {
            return Err(SinkError::Config(format!(
                "tickets.jira.api_version: {} is not 2 or 3",
                cfg.api_version
            )));
        }
        let token = secret(
            "tickets.jira",
            cfg.token_file.as_deref(),
            cfg.token_env.as_deref(),
        )?
        .ok_or_else(|| SinkError::Config("tickets.jira: set token_env or token_file".into()))?;
        let auth = match cfg.auth {
            JiraAuth::Basic => {
                let email = cfg.email.as_deref().ok_or_else(|| {
                    SinkError::Config("tickets.jira: basic auth needs `email`".into())
                })?;
                format!("Basic {}", base64(&format!("{email}:{token}")))
            }
            JiraAuth::Bearer => format!("Bearer {token}"),
        };
        Ok(Jira {
            base: format!(
                "{}/rest/api/{}",
                cfg.url.trim_end_matches('/'),
                cfg.api_version
            ),
            auth,
            http: super::http_client(NAME, timeout)?,
            cfg: cfg.clone(),
        })
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header("Accept", "application/json")
    }

    fn text(&self, b: &Body) -> Value {
        if self.cfg.api_version == 3 {
            b.adf()
        } else {
            Value::String(b.wiki())
        }
    }

    fn issue_ref(&self, v: &Value) -> Option<TicketRef> {
        let key = v["key"].as_str()?.to_string();
        let done = v["fields"]["status"]["statusCategory"]["key"].as_str() == Some("done");
        Some(TicketRef {
            url: Some(format!(
                "{}/browse/{key}",
                self.cfg.url.trim_end_matches('/')
            )),
            key,
            status: if done {
                TicketStatus::Resolved
            } else {
                TicketStatus::Open
            },
        })
    }

    /// Apply the first transition whose name is in `names`, else the first that leads to
    /// (or, for reopening, away from) the done category.
    async fn transition(
        &self,
        key: &str,
        names: &[String],
        to_done: bool,
    ) -> Result<(), SinkError> {
        let r = checked(
            NAME,
            "list transitions",
            self.req(reqwest::Method::GET, &format!("/issue/{key}/transitions"))
                .send()
                .await,
        )
        .await?;
        let v = json_body(NAME, "list transitions", r).await?;
        let list = v["transitions"].as_array().cloned().unwrap_or_default();
        let by_name = names.iter().find_map(|n| {
            list.iter().find(|t| {
                t["name"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(n))
            })
        });
        let by_category = || {
            list.iter()
                .find(|t| (t["to"]["statusCategory"]["key"].as_str() == Some("done")) == to_done)
        };
        let Some(t) = by_name.or_else(by_category) else {
            return Err(SinkError::Response {
                sink: NAME,
                what: "transition",
                message: format!("{key} has no transition named {names:?}"),
            });
        };
        let id = t["id"].clone();
        checked(
            NAME,
            "transition",
            self.req(reqwest::Method::POST, &format!("/issue/{key}/transitions"))
                .json(&json!({"transition": {"id": id}}))
                .send()
                .await,
        )
        .await?;
        Ok(())
    }
}

impl Sink for Jira {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn create(&self, t: &NewTicket) -> Result<TicketRef, SinkError> {
        let mut fields = json!({
            "project": {"key": self.cfg.project},
            "issuetype": {"name": self.cfg.issue_type},
            "summary": t.title,
            "description": self.text(&t.body),
            "labels": t.labels,
        });
        if let Some(p) = self.cfg.priorities.get(t.severity) {
            fields["priority"] = json!({"name": p});
        }
        let r = checked(
            NAME,
            "create issue",
            self.req(reqwest::Method::POST, "/issue")
                .json(&json!({"fields": fields}))
                .send()
                .await,
        )
        .await?;
        let v = json_body(NAME, "create issue", r).await?;
        let key = v["key"].as_str().ok_or_else(|| SinkError::Response {
            sink: NAME,
            what: "create issue",
            message: format!("no key in {v}"),
        })?;
        Ok(TicketRef {
            url: Some(format!(
                "{}/browse/{key}",
                self.cfg.url.trim_end_matches('/')
            )),
            key: key.to_string(),
            status: TicketStatus::Open,
        })
    }

    async fn find_by_fingerprint(&self, fp: &str) -> Result<Option<TicketRef>, SinkError> {
        let jql = format!(
            "project = \"{}\" AND labels = \"{}\" ORDER BY created DESC",
            self.cfg.project,
            super::fingerprint_label(fp)
        );
        // Cloud's search endpoint is /search/jql (the older /search is retired there);
        // Server/DC v2 keeps /search.
        let path = if self.cfg.api_version == 3 {
            "/search/jql"
        } else {
            "/search"
        };
        let r = checked(
            NAME,
            "search",
            self.req(reqwest::Method::GET, path)
                .query(&[
                    ("jql", jql.as_str()),
                    ("fields", "status,labels"),
                    ("maxResults", "20"),
                ])
                .send()
                .await,
        )
        .await?;
        let v = json_body(NAME, "search", r).await?;
        let found: Vec<TicketRef> = v["issues"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| self.issue_ref(i)).collect())
            .unwrap_or_default();
        Ok(found
            .iter()
            .find(|t| t.status == TicketStatus::Open)
            .or(found.first())
            .cloned())
    }

    async fn get(&self, key: &str) -> Result<Option<TicketRef>, SinkError> {
        let r = self
            .req(reqwest::Method::GET, &format!("/issue/{key}"))
            .query(&[("fields", "status,labels")])
            .send()
            .await;
        if let Ok(resp) = &r
            && resp.status() == reqwest::StatusCode::NOT_FOUND
        {
            return Ok(None);
        }
        let v = json_body(NAME, "get issue", checked(NAME, "get issue", r).await?).await?;
        Ok(self.issue_ref(&v))
    }

    async fn comment(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        checked(
            NAME,
            "comment",
            self.req(reqwest::Method::POST, &format!("/issue/{key}/comment"))
                .json(&json!({"body": self.text(&note.body)}))
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    async fn has_note(&self, key: &str, idem: &str) -> Result<bool, SinkError> {
        let marker = super::render::marker(idem);
        let r = checked(
            NAME,
            "get issue",
            self.req(reqwest::Method::GET, &format!("/issue/{key}"))
                .query(&[("fields", "description,comment")])
                .send()
                .await,
        )
        .await?;
        // The marker is a plain text node in ADF and a plain line in wiki text, so a
        // substring search of the JSON finds it in either.
        let text = r
            .text()
            .await
            .map_err(|e| super::transport(NAME, "get issue", e))?;
        Ok(text.contains(&marker))
    }

    async fn reopen(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        self.transition(key, &self.cfg.reopen_transitions, false)
            .await?;
        checked(
            NAME,
            "label regression",
            self.req(reqwest::Method::PUT, &format!("/issue/{key}"))
                .json(&json!({"update": {"labels": [{"add": "regression"}]}}))
                .send()
                .await,
        )
        .await?;
        self.comment(key, note).await
    }

    async fn resolve(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        // Status first: see `outbox::deliver` on finishing an interrupted resolve.
        self.transition(key, &self.cfg.resolve_transitions, true)
            .await?;
        self.comment(key, note).await
    }
}

/// Standard base64 with padding (for the basic auth header).
fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i), o);
        }
    }
}
