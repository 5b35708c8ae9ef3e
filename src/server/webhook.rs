//! The gate as the progressive-delivery tools ask it: Flagger's webhooks and the `web` metric
//! provider of Argo Rollouts (and Kargo, which runs the same AnalysisTemplates).
//!
//! Both get the verdict `GET /gate` serves, only with another status, because each tool reads a
//! status its own way: Flagger retries a 5xx until its timeout, so its no-go (and unknown) is a
//! 403, which it takes as "hold" at once (as its own load tester answers); Argo counts any non-2xx
//! as a measurement error, so its no-go (and unknown) is a 200 that its `successCondition` reads
//! from the body.

use std::borrow::Cow;
use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

/// The query parameter (and its only value) that asks for 200 whatever the decision.
pub const ALWAYS_200: (&str, &str) = ("status", "always-200");

/// Which status a verdict is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 go, 503 no-go or unknown: what `curl -f` in a pipeline needs.
    Pipeline,
    /// 200 go, 403 no-go or unknown: a refusal Flagger does not retry.
    Webhook,
    /// 200 always, the decision in the body: for Argo Rollouts' and Kargo's `web` provider.
    Always200,
}

impl Answer {
    /// The answer a `GET` asks for with its query string. A value other than `always-200` is
    /// refused rather than ignored: a typo would otherwise bring back the 503s that end an
    /// AnalysisRun in Error.
    pub fn from_query(query: Option<&str>) -> Result<Answer, BadRequest> {
        Asked::from_query(query).map(|asked| asked.get())
    }

    /// Rewrites the status of a `GET`-style answer (200, or 503 for no-go, unknown and no fresh
    /// verdict); any other status (404 for an unknown phase) stays.
    pub fn apply(self, mut response: Response) -> Response {
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            match self {
                Answer::Pipeline => {}
                Answer::Webhook => *response.status_mut() = StatusCode::FORBIDDEN,
                Answer::Always200 => *response.status_mut() = StatusCode::OK,
            }
        }
        response
    }
}

/// What a query string asks: the status to answer with and, in fleet mode, whose verdict
/// (`cluster` or `wave`). Other parameters are ignored, as they always were.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Asked<'a> {
    pub answer: Option<Answer>,
    pub cluster: Option<Cow<'a, str>>,
    pub wave: Option<Cow<'a, str>>,
}

impl<'a> Asked<'a> {
    /// Reads `status`, `cluster` and `wave` (percent-decoded). A parameter given twice is
    /// refused: which of two clusters was meant cannot be guessed.
    pub fn from_query(query: Option<&'a str>) -> Result<Asked<'a>, BadRequest> {
        let mut asked = Asked::default();
        let Some(query) = query else {
            return Ok(asked);
        };
        let (status, always) = ALWAYS_200;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*key {
                "cluster" => &mut asked.cluster,
                "wave" => &mut asked.wave,
                k if k == status => {
                    if value != always {
                        return Err(BadRequest(format!(
                            "query parameter {status}={value:?} is not understood; the only value is {status}={always}"
                        )));
                    }
                    asked.answer = Some(Answer::Always200);
                    continue;
                }
                _ => continue,
            };
            if slot.is_some() {
                return Err(BadRequest(format!(
                    "query parameter {key} is given twice; give it once"
                )));
            }
            *slot = Some(value);
        }
        Ok(asked)
    }

    /// The status for a `GET` (`Pipeline` unless `always-200` was asked).
    pub fn get(&self) -> Answer {
        self.answer.unwrap_or(Answer::Pipeline)
    }

    /// The status for a Flagger webhook (`Webhook` unless `always-200` was asked).
    pub fn webhook(&self) -> Answer {
        self.answer.unwrap_or(Answer::Webhook)
    }
}

/// The body Flagger posts to each webhook (`CanaryWebhookPayload` in its sources). Unknown
/// fields and metadata keys are ignored: Flagger adds its own, and users theirs.
#[derive(Debug, Deserialize)]
pub struct FlaggerWebhook {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub metadata: Option<HashMap<String, String>>,
}

impl FlaggerWebhook {
    /// Parses a request body; a body that is not Flagger's shape is a 400 naming what is wrong.
    pub fn parse(body: &[u8]) -> Result<FlaggerWebhook, BadRequest> {
        Self::from_json(body)
            .map_err(|e| BadRequest(format!("the body is not a Flagger webhook payload: {e}")))
    }

    fn from_json(body: &[u8]) -> Result<FlaggerWebhook, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The gate phase this call asks about: `metadata.phase`, if it is set.
    pub fn phase(&self) -> Option<&str> {
        self.metadata_value("phase")
    }

    /// The fleet cluster this call asks about: `metadata.cluster`, if it is set.
    pub fn cluster(&self) -> Option<&str> {
        self.metadata_value("cluster")
    }

    /// The fleet wave this call asks about: `metadata.wave`, if it is set.
    pub fn wave(&self) -> Option<&str> {
        self.metadata_value("wave")
    }

    fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|m| m.get(key))
            .map(String::as_str)
    }
}

/// A request the gate cannot read: a 400 whose JSON `error` says why.
#[derive(Debug)]
pub struct BadRequest(pub String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, Json(json!({"error": self.0}))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_selects_the_answer() {
        assert_eq!(Answer::from_query(None).unwrap(), Answer::Pipeline);
        assert_eq!(Answer::from_query(Some("x=1")).unwrap(), Answer::Pipeline);
        assert_eq!(
            Answer::from_query(Some("x=1&status=always-200")).unwrap(),
            Answer::Always200
        );
        let refused = Answer::from_query(Some("status=always200")).unwrap_err();
        assert!(refused.0.contains("status=always-200"), "{refused:?}");
    }

    #[test]
    fn the_query_names_the_cluster_or_wave() {
        let asked = Asked::from_query(Some("cluster=prod%2Deuw1&x=1&status=always-200")).unwrap();
        assert_eq!(asked.cluster.as_deref(), Some("prod-euw1"));
        assert_eq!(asked.wave, None);
        assert_eq!(
            (asked.get(), asked.webhook()),
            (Answer::Always200, Answer::Always200)
        );
        let asked = Asked::from_query(Some("wave=prod")).unwrap();
        assert_eq!(asked.wave.as_deref(), Some("prod"));
        assert_eq!(
            (asked.get(), asked.webhook()),
            (Answer::Pipeline, Answer::Webhook)
        );
        let refused = Asked::from_query(Some("wave=a&wave=b")).unwrap_err();
        assert!(refused.0.contains("wave is given twice"), "{refused:?}");
    }

    #[test]
    fn flaggers_body_parses_and_its_shape_is_checked() {
        let body = br#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"abc","metadata":{"phase":"istio","type":"x"}}"#;
        let hook = FlaggerWebhook::parse(body).unwrap();
        assert_eq!(hook.phase(), Some("istio"));
        assert_eq!((hook.cluster(), hook.wave()), (None, None));
        let body = br#"{"name":"p","namespace":"t","phase":"Progressing","metadata":{"cluster":"c1","wave":"w"}}"#;
        let hook = FlaggerWebhook::parse(body).unwrap();
        assert_eq!((hook.cluster(), hook.wave()), (Some("c1"), Some("w")));
        for (bad, names) in [
            (
                &br#"{"namespace":"t","phase":"p"}"#[..],
                "missing field `name`",
            ),
            (br#"{"name":"n","phase":"p"}"#, "missing field `namespace`"),
            (br#"{"name":"n","namespace":"t"}"#, "missing field `phase`"),
            (
                br#"{"name":"n","namespace":"t","phase":"p","metadata":{"a":1}}"#,
                "invalid type: integer `1`, expected a string",
            ),
            (b"not json", "expected ident"),
        ] {
            let err = FlaggerWebhook::from_json(bad).unwrap_err().to_string();
            assert!(err.contains(names), "{err}");
            let refused = FlaggerWebhook::parse(bad).unwrap_err().into_response();
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        }
    }
}
