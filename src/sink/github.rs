//! GitHub Issues (REST). Issues are found by the `medic-fp-<fp>` label through the
//! repository's issue list (consistent at once, unlike the search API); reopen and
//! resolve set the issue's state.

use serde_json::{Value, json};

use super::config::{GitHubConfig, secret};
use super::{NewTicket, Note, Sink, SinkError, TicketRef, TicketStatus, checked, json_body};

const NAME: &str = "github";

/// A GitHub repository's issues.
#[derive(Debug)]
pub struct GitHub {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl GitHub {
    /// Build from the configuration, reading the token now.
    pub fn new(cfg: &GitHubConfig, timeout: std::time::Duration) -> Result<GitHub, SinkError> {
        let parts: Vec<&str> = cfg.repo.split('/').collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(SinkError::Config(format!(
                "tickets.github.repo: {:?} is not owner/name",
                cfg.repo
            )));
        }
        let token = secret(
            "tickets.github",
            cfg.token_file.as_deref(),
            cfg.token_env.as_deref(),
        )?
        .ok_or_else(|| SinkError::Config("tickets.github: set token_env or token_file".into()))?;
        Ok(GitHub {
            base: format!("{}/repos/{}", cfg.api_url.trim_end_matches('/'), cfg.repo),
            token,
            http: super::http_client(NAME, timeout)?,
        })
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }

    fn issue_ref(v: &Value) -> Option<TicketRef> {
        // The issues endpoints list pull requests too.
        if v.get("pull_request").is_some() {
            return None;
        }
        Some(TicketRef {
            key: v["number"].as_u64()?.to_string(),
            status: if v["state"].as_str() == Some("closed") {
                TicketStatus::Resolved
            } else {
                TicketStatus::Open
            },
            url: v["html_url"].as_str().map(str::to_string),
        })
    }

    async fn set_state(&self, key: &str, state: &str, what: &'static str) -> Result<(), SinkError> {
        let mut body = json!({"state": state});
        if state == "closed" {
            body["state_reason"] = json!("completed");
        }
        checked(
            NAME,
            what,
            self.req(reqwest::Method::PATCH, &format!("/issues/{key}"))
                .json(&body)
                .send()
                .await,
        )
        .await?;
        Ok(())
    }
}

impl Sink for GitHub {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn create(&self, t: &NewTicket) -> Result<TicketRef, SinkError> {
        let r = checked(
            NAME,
            "create issue",
            self.req(reqwest::Method::POST, "/issues")
                .json(&json!({"title": t.title, "body": t.body.markdown(), "labels": t.labels}))
                .send()
                .await,
        )
        .await?;
        let v = json_body(NAME, "create issue", r).await?;
        GitHub::issue_ref(&v).ok_or_else(|| SinkError::Response {
            sink: NAME,
            what: "create issue",
            message: format!("no issue number in {v}"),
        })
    }

    async fn find_by_fingerprint(&self, fp: &str) -> Result<Option<TicketRef>, SinkError> {
        let label = super::fingerprint_label(fp);
        let r = checked(
            NAME,
            "list issues",
            self.req(reqwest::Method::GET, "/issues")
                .query(&[
                    ("labels", label.as_str()),
                    ("state", "all"),
                    ("sort", "created"),
                    ("direction", "desc"),
                    ("per_page", "20"),
                ])
                .send()
                .await,
        )
        .await?;
        let v = json_body(NAME, "list issues", r).await?;
        let found: Vec<TicketRef> = v
            .as_array()
            .map(|a| a.iter().filter_map(GitHub::issue_ref).collect())
            .unwrap_or_default();
        Ok(found
            .iter()
            .find(|t| t.status == TicketStatus::Open)
            .or(found.first())
            .cloned())
    }

    async fn get(&self, key: &str) -> Result<Option<TicketRef>, SinkError> {
        let r = self
            .req(reqwest::Method::GET, &format!("/issues/{key}"))
            .send()
            .await;
        if let Ok(resp) = &r
            && matches!(resp.status().as_u16(), 404 | 410)
        {
            return Ok(None);
        }
        let v = json_body(NAME, "get issue", checked(NAME, "get issue", r).await?).await?;
        Ok(GitHub::issue_ref(&v))
    }

    async fn comment(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        checked(
            NAME,
            "comment",
            self.req(reqwest::Method::POST, &format!("/issues/{key}/comments"))
                .json(&json!({"body": note.body.markdown()}))
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    async fn has_note(&self, key: &str, idem: &str) -> Result<bool, SinkError> {
        let marker = super::render::marker(idem);
        let issue = checked(
            NAME,
            "get issue",
            self.req(reqwest::Method::GET, &format!("/issues/{key}"))
                .send()
                .await,
        )
        .await?;
        let issue = json_body(NAME, "get issue", issue).await?;
        if issue["body"].as_str().is_some_and(|b| b.contains(&marker)) {
            return Ok(true);
        }
        // Newest comments are where a retried action's comment would be.
        let r = checked(
            NAME,
            "list comments",
            self.req(reqwest::Method::GET, &format!("/issues/{key}/comments"))
                .query(&[("per_page", "100")])
                .send()
                .await,
        )
        .await?;
        let v = json_body(NAME, "list comments", r).await?;
        Ok(v.as_array().is_some_and(|a| {
            a.iter()
                .any(|c| c["body"].as_str().is_some_and(|b| b.contains(&marker)))
        }))
    }

    async fn reopen(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        self.set_state(key, "open", "reopen").await?;
        checked(
            NAME,
            "label regression",
            self.req(reqwest::Method::POST, &format!("/issues/{key}/labels"))
                .json(&json!({"labels": ["regression"]}))
                .send()
                .await,
        )
        .await?;
        self.comment(key, note).await
    }

    async fn resolve(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        // Status first: see `outbox::deliver` on finishing an interrupted resolve.
        self.set_state(key, "closed", "close").await?;
        self.comment(key, note).await
    }
}
