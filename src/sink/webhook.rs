//! A generic webhook: one signed JSON POST per ticket action, for Slack relays, agent
//! pipelines or anything else. The receiver keeps no state medic can query, so delivery
//! relies on the store's record of what was sent; each delivery carries its idempotency
//! key (`X-Medic-Delivery`) so a receiver can drop the duplicate a crash may cause.
//!
//! Signature: `X-Medic-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`, as GitHub
//! signs its webhooks.

use hmac::{KeyInit, Mac};
use serde_json::json;

use super::config::{WebhookConfig, secret};
use super::{NewTicket, Note, Sink, SinkError, TicketRef, TicketStatus, checked};

const NAME: &str = "webhook";

/// A webhook endpoint.
#[derive(Debug)]
pub struct Webhook {
    url: String,
    secret: Option<String>,
    http: reqwest::Client,
}

/// The signature header value for a body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + bytes.len() * 2);
    hex.push_str("sha256=");
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

impl Webhook {
    /// Build from the configuration, reading the secret now.
    pub fn new(cfg: &WebhookConfig, timeout: std::time::Duration) -> Result<Webhook, SinkError> {
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(SinkError::Config(format!(
                "tickets.webhook.url: {:?} is not an http(s) URL",
                cfg.url
            )));
        }
        Ok(Webhook {
            url: cfg.url.clone(),
            secret: secret(
                "tickets.webhook",
                cfg.secret_file.as_deref(),
                cfg.secret_env.as_deref(),
            )?,
            http: super::http_client(NAME, timeout)?,
        })
    }

    async fn post(
        &self,
        event: &str,
        idem: &str,
        payload: serde_json::Value,
    ) -> Result<(), SinkError> {
        let body = serde_json::to_vec(&payload).map_err(|e| SinkError::Response {
            sink: NAME,
            what: "encode",
            message: e.to_string(),
        })?;
        let mut req = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Medic-Event", event)
            .header("X-Medic-Delivery", idem);
        if let Some(s) = &self.secret {
            req = req.header("X-Medic-Signature-256", signature(s, &body));
        }
        checked(NAME, "deliver", req.body(body).send().await).await?;
        Ok(())
    }
}

impl Sink for Webhook {
    fn name(&self) -> &'static str {
        NAME
    }

    fn stateless(&self) -> bool {
        true
    }

    async fn create(&self, t: &NewTicket) -> Result<TicketRef, SinkError> {
        let key = format!("fp-{}", t.fingerprint);
        self.post(
            "ticket.created",
            &t.idem,
            json!({
                "event": "ticket.created",
                "key": key,
                "fingerprint": t.fingerprint,
                "title": t.title,
                "labels": t.labels,
                "severity": t.severity,
                "body_markdown": t.body.markdown(),
                "incident": t.escalated.incident,
                "classification": t.escalated.classified,
            }),
        )
        .await?;
        Ok(TicketRef {
            key,
            status: TicketStatus::Open,
            url: None,
        })
    }

    async fn find_by_fingerprint(&self, _fp: &str) -> Result<Option<TicketRef>, SinkError> {
        Ok(None)
    }

    async fn get(&self, _key: &str) -> Result<Option<TicketRef>, SinkError> {
        Ok(None)
    }

    async fn comment(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        self.post(
            "ticket.commented",
            &note.idem,
            json!({"event": "ticket.commented", "key": key, "body_markdown": note.body.markdown()}),
        )
        .await
    }

    async fn has_note(&self, _key: &str, _idem: &str) -> Result<bool, SinkError> {
        Ok(false)
    }

    async fn reopen(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        self.post(
            "ticket.reopened",
            &note.idem,
            json!({"event": "ticket.reopened", "key": key, "regression": true, "body_markdown": note.body.markdown()}),
        )
        .await
    }

    async fn resolve(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        self.post(
            "ticket.resolved",
            &note.idem,
            json!({"event": "ticket.resolved", "key": key, "body_markdown": note.body.markdown()}),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
