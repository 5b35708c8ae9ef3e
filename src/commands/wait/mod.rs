//! `upgrade-gate wait`: the pipeline step between two phases. Polls a phase until it is go,
//! printing one progress line per poll, and ends with an exit code a CI system understands.
//!
//! It asks a running daemon (`--server`) or evaluates locally from a config, with the same
//! meaning either way: a phase is go only when the gate says so; errors are never go. An
//! unknown answer (a query errored, or the gate has no fresh verdict) is waited on like a no-go,
//! but a wait that ends on one says it could not tell (exit 2), as `check` does. In a fleet it
//! waits for one cluster's phase, a whole wave's phase, or a wave's start.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::time::Instant;

use super::common::{load, runtime, EXIT_CANNOT};
use super::fleet::{self, Answer, Subject};
use crate::config::Config;
use crate::engine::decide::{Decision, Verdict};
use crate::engine::pack::ALL_PHASES;
use crate::evaluation::evaluate;
use crate::evaluation::fleet::FleetEvaluator;
use crate::prometheus::source::PrometheusSource;
use crate::secret::Secret;
pub use progress::{progress_line, ChangeLog, Poll};

mod progress;

/// Where the answers come from.
pub enum Target {
    /// Base URL of a running upgrade-gate, e.g. `http://upgrade-gate:8080`, and the file holding
    /// its bearer token, if it wants one.
    Server {
        base: String,
        token_file: Option<PathBuf>,
    },
    /// Evaluate locally against the config's Prometheus.
    Local {
        config: Box<Config>,
        source: Box<PrometheusSource>,
    },
    /// Evaluate a fleet locally: one fleet evaluation per poll, its windows and each cluster's
    /// go-since kept from one poll to the next (so a wave's soak counts while `wait` runs).
    Fleet {
        config: Box<Config>,
        evaluator: Box<FleetEvaluator>,
    },
}

/// What `wait` waits for: a phase (`None` only with `--start-wave`), in the fleet's cluster or
/// wave when one is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub phase: Option<String>,
    pub subject: Option<Subject>,
}

impl Question {
    fn phase(&self) -> &str {
        self.phase.as_deref().unwrap_or(ALL_PHASES)
    }

    /// What the progress lines start with: `istio`, `cluster c2 istio`, `wave prod start`.
    fn label(&self) -> String {
        match &self.subject {
            None => self.phase().to_string(),
            Some(Subject::Cluster(c)) => format!("cluster {c} {}", self.phase()),
            Some(Subject::Wave(w)) => format!("wave {w} {}", self.phase()),
            Some(Subject::StartWave(w)) => format!("wave {w} start"),
        }
    }

    /// How the last line names it: `phase istio`, `cluster c2, phase istio`, `wave prod`.
    fn said(&self) -> String {
        match &self.subject {
            None => format!("phase {}", self.phase()),
            Some(s) => s.said(self.phase()),
        }
    }

    fn go(&self) -> String {
        match &self.subject {
            Some(Subject::StartWave(w)) => format!("wave {w} may start"),
            _ => format!("{} is go", self.said()),
        }
    }

    /// The route that answers it, e.g. `/gate/istio?cluster=c2`, `/waves/prod`.
    fn url(&self, base: &str) -> Result<reqwest::Url, String> {
        let base = base.trim_end_matches('/');
        let path = match &self.subject {
            Some(Subject::StartWave(w)) => format!("{base}/waves/{w}"),
            _ => format!("{base}/gate/{}", self.phase()),
        };
        let mut url =
            reqwest::Url::parse(&path).map_err(|e| format!("--server {base} is not a URL: {e}"))?;
        if let Some((key, value)) = self.subject.as_ref().and_then(Subject::query) {
            url.query_pairs_mut().append_pair(key, value);
        }
        Ok(url)
    }
}

/// How `wait` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Go,
    /// The timeout passed and the last answer was this one: no-go or unknown.
    TimedOut(Decision),
    /// The timeout passed and the last poll failed, or the phase does not exist.
    Error(String),
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Go => 0,
            Outcome::TimedOut(Decision::Unknown) | Outcome::Error(_) => 2,
            Outcome::TimedOut(_) => 1,
        }
    }
}

/// The body of a `/gate` answer, or of its 503 error form.
#[derive(Debug, Deserialize)]
struct GateAnswer {
    decision: Option<Decision>,
    score: Option<f64>,
    min_score: Option<f64>,
    stable_since: Option<DateTime<Utc>>,
    stable_for: Option<String>,
    #[serde(default)]
    reasons: Vec<String>,
    evaluated_at: Option<DateTime<Utc>>,
    error: Option<String>,
}

/// Polls until go or until `timeout`, writing progress to `out`. With `live`, each poll rewrites
/// one terminal line; otherwise a line is written when the answer changes, with a heartbeat in
/// between, as CI logs want.
pub async fn wait(
    target: &mut Target,
    question: &Question,
    timeout: Duration,
    interval: Duration,
    out: &mut dyn Write,
    live: bool,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let client = reqwest::Client::builder()
        .timeout(interval.clamp(Duration::from_secs(1), Duration::from_secs(10)))
        .build()
        .expect("a reqwest client with a timeout builds");
    let mut log = ChangeLog::default();
    let label = question.label();
    loop {
        let poll = match target {
            Target::Server { base, token_file } => {
                poll_server(&client, base, token_file.as_deref(), question).await
            }
            Target::Local { config, source } => poll_local(config, source, question.phase()).await,
            Target::Fleet { config, evaluator } => poll_fleet(config, evaluator, question).await,
        };
        let now = Utc::now();
        if live {
            let _ = write!(out, "\r\x1b[2K{}", progress_line(&label, &poll, now));
        } else if let Some(line) = log.line(&label, &poll, now) {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        let outcome = match &poll {
            Poll::Answer {
                decision: Decision::Go,
                ..
            } => Some(Outcome::Go),
            Poll::Unanswerable(message) => Some(Outcome::Error(message.clone())),
            _ if Instant::now() + interval > deadline => Some(match &poll {
                Poll::Answer { decision, .. } => Outcome::TimedOut(*decision),
                Poll::Unanswerable(e) | Poll::Error(e) => Outcome::Error(e.clone()),
            }),
            _ => None,
        };
        if let Some(outcome) = outcome {
            if live {
                let _ = writeln!(out);
            }
            return outcome;
        }
        tokio::time::sleep(interval).await;
    }
}

/// The command: pick the target, wait, say how it ended.
pub fn run(
    question: Question,
    server: Option<String>,
    token_file: Option<PathBuf>,
    path: Option<PathBuf>,
    timeout: Duration,
    interval: Duration,
) -> u8 {
    let mut target = match server {
        Some(base) => {
            // A wrong path is a mistake in the pipeline, not a gate that is not ready yet.
            if let Some(file) = &token_file {
                if let Err(e) = read_token(file) {
                    eprintln!("{e}");
                    return EXIT_CANNOT;
                }
            }
            Target::Server { base, token_file }
        }
        None => match local_target(path, &question) {
            Ok(t) => t,
            Err(code) => return code,
        },
    };
    let live = std::io::stdout().is_terminal();
    let outcome = runtime().block_on(wait(
        &mut target,
        &question,
        timeout,
        interval,
        &mut std::io::stdout(),
        live,
    ));
    match &outcome {
        Outcome::Go => outln!("{}", question.go()),
        Outcome::TimedOut(decision) => eprintln!(
            "{} after {}",
            match (&question.subject, decision) {
                (Some(Subject::StartWave(w)), Decision::Unknown) => {
                    format!("whether wave {w} may start is still unknown")
                }
                (Some(Subject::StartWave(w)), _) => format!("wave {w} still may not start"),
                (_, Decision::Unknown) => format!("{} still unknown", question.said()),
                _ => format!("{} still no-go", question.said()),
            },
            humantime::format_duration(timeout)
        ),
        Outcome::Error(e) => eprintln!("cannot tell whether {}: {e}", question.go()),
    }
    outcome.exit_code()
}

/// The local evaluation of `question`, or the exit code after saying why there is none: a bad
/// configuration, fleet options that do not fit it, a store that cannot be queried.
fn local_target(path: Option<PathBuf>, question: &Question) -> Result<Target, u8> {
    let mut config = load(path)?;
    let subject = fleet::checked(&config, question.subject.clone())?;
    // A wave's start waits on every phase; anything else on its phase's signals only.
    if !matches!(subject, Some(Subject::StartWave(_))) {
        config.pack.signals.retain(|s| s.in_phase(question.phase()));
    }
    if subject.is_none() {
        let source = PrometheusSource::new(&config.prometheus).map_err(|e| {
            eprintln!("{e}");
            EXIT_CANNOT
        })?;
        return Ok(Target::Local {
            config: Box::new(config),
            source: Box::new(source),
        });
    }
    if config.pack.phase(question.phase()).is_none() {
        eprintln!("{}", unknown_phase(&config, question.phase()));
        return Err(EXIT_CANNOT);
    }
    let evaluator = FleetEvaluator::new(&config).map_err(|e| {
        eprintln!("{e}");
        EXIT_CANNOT
    })?;
    Ok(Target::Fleet {
        config: Box::new(config),
        evaluator: Box::new(evaluator),
    })
}

fn unknown_phase(config: &Config, phase: &str) -> String {
    format!(
        "unknown phase {phase:?}; known phases: {}",
        config.pack.phase_names().join(", ")
    )
}

/// The token in `file`, trimmed; the error names the file, never its content.
fn read_token(file: &Path) -> Result<Secret, String> {
    match std::fs::read_to_string(file) {
        Ok(text) if text.trim().is_empty() => {
            Err(format!("--token-file {} is empty", file.display()))
        }
        Ok(text) => Ok(Secret::new(text.trim().to_string())),
        Err(e) => Err(format!("cannot read --token-file {}: {e}", file.display())),
    }
}

async fn poll_server(
    client: &reqwest::Client,
    base: &str,
    token_file: Option<&Path>,
    question: &Question,
) -> Poll {
    let url = match question.url(base) {
        Ok(url) => url,
        Err(e) => return Poll::Unanswerable(e),
    };
    let mut request = client.get(url);
    if let Some(file) = token_file {
        match read_token(file) {
            Ok(token) => request = request.bearer_auth(token.expose()),
            Err(e) => return Poll::Error(e),
        }
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Poll::Error(format!("cannot reach {base}: {}", e.without_url())),
    };
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Poll::Error(format!(
            "{base} refused the token (401): pass the server's bearer token with --token-file"
        ));
    }
    let body: GateAnswer = match response.json().await {
        Ok(b) => b,
        Err(e) => {
            return Poll::Error(format!(
                "{base} answered {status} with a body that is not a gate answer: {e}"
            ))
        }
    };
    match (status.as_u16(), body.decision, body.error) {
        (404, _, error) => Poll::Unanswerable(
            error.unwrap_or_else(|| format!("{base} does not know {}", question.said())),
        ),
        // A fleet gate asked without --cluster, --wave or --start-wave says which to add.
        (400, _, Some(error)) => Poll::Unanswerable(error),
        // 503 is no-go or unknown, with reasons, or with an error when the gate has no fresh
        // verdict, which is unknown whatever an older gate put in `decision`.
        (503, _, Some(error)) => Poll::Answer {
            decision: Decision::Unknown,
            score: None,
            min_score: None,
            stable_since: None,
            stable_for: None,
            reasons: vec![error],
            evaluated_at: None,
        },
        (200, Some(decision @ Decision::Go), _)
        | (503, Some(decision @ (Decision::NoGo | Decision::Unknown)), None) => Poll::Answer {
            decision,
            score: body.score,
            min_score: body.min_score,
            stable_since: body.stable_since,
            stable_for: body.stable_for,
            reasons: body.reasons,
            evaluated_at: body.evaluated_at,
        },
        (code, _, _) => Poll::Error(format!(
            "{base} answered {code}, which is not a gate answer"
        )),
    }
}

async fn poll_local(config: &Config, source: &PrometheusSource, phase: &str) -> Poll {
    if config.pack.phase(phase).is_none() {
        return Poll::Unanswerable(unknown_phase(config, phase));
    }
    // A query error is in the verdict: unknown, or no-go beside a known failure.
    let snapshot = evaluate(config, source, Utc::now().timestamp()).await;
    let v = snapshot
        .verdict(phase)
        .expect("the snapshot judges every known phase");
    verdict_poll(v)
}

fn verdict_poll(v: &Verdict) -> Poll {
    Poll::Answer {
        decision: v.decision,
        score: Some(v.score),
        min_score: Some(v.min_score),
        stable_since: v.stable_since,
        stable_for: Some(humantime::format_duration(v.stable_for).to_string()),
        reasons: v.reasons.clone(),
        evaluated_at: Some(v.evaluated_at),
    }
}

/// One fleet evaluation now, read for `question` as its route would answer it.
async fn poll_fleet(config: &Config, evaluator: &mut FleetEvaluator, question: &Question) -> Poll {
    let snapshot = evaluator.evaluate(config, Utc::now().timestamp()).await;
    let subject = question
        .subject
        .as_ref()
        .expect("a fleet target has a subject");
    let Some(answer) = Answer::of(&snapshot, subject, question.phase()) else {
        return Poll::Unanswerable(format!("the fleet evaluation holds no {}", question.said()));
    };
    match answer {
        Answer::Cluster(v) => verdict_poll(v.verdict),
        Answer::Wave { verdict: v, .. } => Poll::Answer {
            decision: v.decision,
            score: Some(v.score),
            min_score: Some(v.min_score),
            stable_since: v.stable_since,
            stable_for: Some(humantime::format_duration(v.stable_for).to_string()),
            reasons: v.reasons,
            evaluated_at: Some(v.evaluated_at),
        },
        Answer::StartWave(s) => Poll::Answer {
            decision: s.decision,
            score: None,
            min_score: None,
            stable_since: None,
            stable_for: None,
            reasons: s.reasons.clone(),
            evaluated_at: Some(s.evaluated_at),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_outcome() {
        assert_eq!(Outcome::Go.exit_code(), 0);
        assert_eq!(Outcome::TimedOut(Decision::NoGo).exit_code(), 1);
        assert_eq!(Outcome::TimedOut(Decision::Unknown).exit_code(), 2);
        assert_eq!(Outcome::Error("x".into()).exit_code(), 2);
    }

    #[test]
    fn a_fleet_question_asks_its_route() {
        let ask = |phase: Option<&str>, subject: Option<Subject>| {
            let q = Question {
                phase: phase.map(str::to_string),
                subject,
            };
            q.url("http://gate:8080/").unwrap().to_string()
        };
        assert_eq!(ask(Some("istio"), None), "http://gate:8080/gate/istio");
        assert_eq!(
            ask(Some("istio"), Some(Subject::Cluster("prod-euw1".into()))),
            "http://gate:8080/gate/istio?cluster=prod-euw1"
        );
        assert_eq!(
            ask(Some("istio"), Some(Subject::Wave("canary".into()))),
            "http://gate:8080/gate/istio?wave=canary"
        );
        assert_eq!(
            ask(None, Some(Subject::StartWave("prod".into()))),
            "http://gate:8080/waves/prod"
        );
    }
}
