//! `upgrade-gate wait`: the pipeline step between two phases. Polls a phase until it is go,
//! printing one progress line per poll, and ends with an exit code a CI system understands.
//!
//! It asks a running daemon (`--server`) or evaluates locally from a config, with the same
//! meaning either way: a phase is go only when the gate says so; errors are never go. An
//! unknown answer (a query errored, or the gate has no fresh verdict) is waited on like a no-go,
//! but a wait that ends on one says it could not tell (exit 2), as `check` does.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::time::Instant;

use super::common::{load_single_cluster, runtime, EXIT_CANNOT};
use crate::config::Config;
use crate::engine::decide::Decision;
use crate::engine::text::fmt_number;
use crate::evaluation::evaluate;
use crate::prometheus::source::PrometheusSource;
use crate::secret::Secret;

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
}

/// One poll's answer, reduced to what the progress line and the exit code need.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    Answer {
        decision: Decision,
        score: Option<f64>,
        min_score: Option<f64>,
        stable_since: Option<DateTime<Utc>>,
        stable_for: Option<String>,
        reasons: Vec<String>,
        evaluated_at: Option<DateTime<Utc>>,
    },
    /// The phase does not exist: waiting cannot help.
    NoSuchPhase(String),
    /// The gate could not answer this time (unreachable, refused the token, garbage).
    Error(String),
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
    target: &Target,
    phase: &str,
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
    loop {
        let poll = match target {
            Target::Server { base, token_file } => {
                poll_server(&client, base, token_file.as_deref(), phase).await
            }
            Target::Local { config, source } => poll_local(config, source, phase).await,
        };
        let now = Utc::now();
        if live {
            let _ = write!(out, "\r\x1b[2K{}", progress_line(phase, &poll, now));
        } else if let Some(line) = log.line(phase, &poll, now) {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        let outcome = match &poll {
            Poll::Answer {
                decision: Decision::Go,
                ..
            } => Some(Outcome::Go),
            Poll::NoSuchPhase(message) => Some(Outcome::Error(message.clone())),
            _ if Instant::now() + interval > deadline => Some(match &poll {
                Poll::Answer { decision, .. } => Outcome::TimedOut(*decision),
                Poll::NoSuchPhase(e) | Poll::Error(e) => Outcome::Error(e.clone()),
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
    phase: String,
    server: Option<String>,
    token_file: Option<PathBuf>,
    path: Option<PathBuf>,
    timeout: Duration,
    interval: Duration,
) -> u8 {
    let target = match server {
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
        None => {
            let mut config = match load_single_cluster(path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            config.pack.signals.retain(|s| s.in_phase(&phase));
            match PrometheusSource::new(&config.prometheus) {
                Ok(source) => Target::Local {
                    config: Box::new(config),
                    source: Box::new(source),
                },
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_CANNOT;
                }
            }
        }
    };
    let live = std::io::stdout().is_terminal();
    let outcome = runtime().block_on(wait(
        &target,
        &phase,
        timeout,
        interval,
        &mut std::io::stdout(),
        live,
    ));
    match &outcome {
        Outcome::Go => println!("phase {phase} is go"),
        Outcome::TimedOut(decision) => eprintln!(
            "phase {phase} still {} after {}",
            match decision {
                Decision::Unknown => "unknown",
                _ => "no-go",
            },
            humantime::format_duration(timeout)
        ),
        Outcome::Error(e) => eprintln!("cannot tell whether phase {phase} is go: {e}"),
    }
    outcome.exit_code()
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
    phase: &str,
) -> Poll {
    let url = format!("{}/gate/{phase}", base.trim_end_matches('/'));
    let mut request = client.get(&url);
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
        (404, _, error) => {
            Poll::NoSuchPhase(error.unwrap_or_else(|| format!("unknown phase {phase:?}")))
        }
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
        return Poll::NoSuchPhase(format!(
            "unknown phase {phase:?}; known phases: {}",
            config.pack.phase_names().join(", ")
        ));
    }
    // A query error is in the verdict: unknown, or no-go beside a known failure.
    let snapshot = evaluate(config, source, Utc::now().timestamp()).await;
    let v = snapshot
        .verdict(phase)
        .expect("the snapshot judges every known phase");
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

/// How often a log that has seen no change says that it is still waiting.
const HEARTBEAT: Duration = Duration::from_secs(60);

/// Progress for a log rather than a terminal (a CI job's output): a line when the decision,
/// score or reasons change, and a short heartbeat when nothing has for [`HEARTBEAT`], instead of
/// the same long line at every poll.
#[derive(Default)]
struct ChangeLog {
    /// What the last full line said, and when the last line of any kind was written.
    last: Option<(String, DateTime<Utc>)>,
    since: Option<DateTime<Utc>>,
}

impl ChangeLog {
    fn line(&mut self, phase: &str, poll: &Poll, now: DateTime<Utc>) -> Option<String> {
        let key = match poll {
            Poll::Answer {
                decision,
                score,
                reasons,
                ..
            } => format!("{decision:?} {score:?} {reasons:?}"),
            Poll::NoSuchPhase(message) | Poll::Error(message) => message.clone(),
        };
        match &mut self.last {
            Some((last, written)) if *last == key => {
                if now - *written < chrono::Duration::from_std(HEARTBEAT).unwrap_or_default() {
                    return None;
                }
                *written = now;
                let since = self.since.unwrap_or(now);
                let decision = match poll {
                    Poll::Answer { decision, .. } => decision.heading(),
                    Poll::NoSuchPhase(_) | Poll::Error(_) => "ERROR",
                };
                Some(format!(
                    "{} {phase} still {decision}, unchanged since {}",
                    now.format("%H:%M:%S"),
                    since.format("%H:%M:%S")
                ))
            }
            _ => {
                self.last = Some((key, now));
                self.since = Some(now);
                Some(progress_line(phase, poll, now))
            }
        }
    }
}

/// `10:00:15 istio NO-GO score 75/90, healthy 4m of 15m: <first reason> (+2 more)`.
pub fn progress_line(phase: &str, poll: &Poll, now: DateTime<Utc>) -> String {
    let clock = now.format("%H:%M:%S");
    match poll {
        Poll::Answer {
            decision,
            score,
            min_score,
            stable_since,
            stable_for,
            reasons,
            evaluated_at,
        } => {
            let mut line = format!("{clock} {phase} {}", decision.heading());
            if let (Some(score), Some(min)) = (score, min_score) {
                line.push_str(&format!(
                    " score {}/{}",
                    fmt_number(*score),
                    fmt_number(*min)
                ));
            }
            if let (Some(since), Some(at)) = (stable_since, evaluated_at) {
                let healthy = (*at - *since).to_std().unwrap_or_default();
                line.push_str(&format!(
                    ", healthy {}",
                    humantime::format_duration(Duration::from_secs(healthy.as_secs()))
                ));
                if let Some(needed) = stable_for {
                    line.push_str(&format!(" of {needed}"));
                }
            }
            if let Some(first) = reasons.first() {
                line.push_str(&format!(": {first}"));
                if reasons.len() > 1 {
                    line.push_str(&format!(" (+{} more)", reasons.len() - 1));
                }
            }
            line
        }
        Poll::NoSuchPhase(message) => format!("{clock} {phase} ERROR: {message}"),
        Poll::Error(message) => format!("{clock} {phase} ERROR: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_log_gets_changes_and_heartbeats_not_every_poll() {
        let no_go = |reason: &str| Poll::Answer {
            decision: Decision::NoGo,
            score: Some(75.0),
            min_score: Some(90.0),
            stable_since: None,
            stable_for: Some("15m".into()),
            reasons: vec![reason.into()],
            evaluated_at: Some(at("2026-11-26T10:00:00Z")),
        };
        let mut log = ChangeLog::default();
        let t = |s: u32| at("2026-11-26T10:00:00Z") + chrono::Duration::seconds(s.into());
        assert_eq!(
            log.line("istio", &no_go("a"), t(0)).as_deref(),
            Some("10:00:00 istio NO-GO score 75/90: a")
        );
        // The same answer polled every second: silence until the heartbeat is due.
        assert!((1..60).all(|s| log.line("istio", &no_go("a"), t(s)).is_none()));
        assert_eq!(
            log.line("istio", &no_go("a"), t(60)).as_deref(),
            Some("10:01:00 istio still NO-GO, unchanged since 10:00:00")
        );
        assert!(log.line("istio", &no_go("a"), t(61)).is_none());
        // A new reason is a new line at once.
        assert_eq!(
            log.line("istio", &no_go("b"), t(62)).as_deref(),
            Some("10:01:02 istio NO-GO score 75/90: b")
        );
        assert_eq!(
            log.line("istio", &Poll::Error("down".into()), t(63))
                .as_deref(),
            Some("10:01:03 istio ERROR: down")
        );
    }

    #[test]
    fn progress_lines_read_well() {
        let poll = Poll::Answer {
            decision: Decision::NoGo,
            score: Some(75.0),
            min_score: Some(90.0),
            stable_since: Some(at("2026-11-26T09:56:00Z")),
            stable_for: Some("15m".into()),
            reasons: vec!["first".into(), "second".into(), "third".into()],
            evaluated_at: Some(at("2026-11-26T10:00:00Z")),
        };
        assert_eq!(
            progress_line("istio", &poll, at("2026-11-26T10:00:15Z")),
            "10:00:15 istio NO-GO score 75/90, healthy 4m of 15m: first (+2 more)"
        );
        assert_eq!(
            progress_line(
                "istio",
                &Poll::Error("cannot reach x".into()),
                at("2026-11-26T10:00:15Z")
            ),
            "10:00:15 istio ERROR: cannot reach x"
        );
    }

    #[test]
    fn an_unknown_answer_reads_unknown() {
        let poll = Poll::Answer {
            decision: Decision::Unknown,
            score: None,
            min_score: None,
            stable_since: None,
            stable_for: None,
            reasons: vec!["no evaluation has finished yet".into()],
            evaluated_at: None,
        };
        let now = at("2026-11-26T10:00:15Z");
        assert_eq!(
            progress_line("istio", &poll, now),
            "10:00:15 istio UNKNOWN: no evaluation has finished yet"
        );
        let mut log = ChangeLog::default();
        assert!(log.line("istio", &poll, now).is_some());
        assert_eq!(
            log.line("istio", &poll, now + chrono::Duration::seconds(60))
                .as_deref(),
            Some("10:01:15 istio still UNKNOWN, unchanged since 10:00:15")
        );
    }

    #[test]
    fn exit_codes_follow_the_outcome() {
        assert_eq!(Outcome::Go.exit_code(), 0);
        assert_eq!(Outcome::TimedOut(Decision::NoGo).exit_code(), 1);
        assert_eq!(Outcome::TimedOut(Decision::Unknown).exit_code(), 2);
        assert_eq!(Outcome::Error("x".into()).exit_code(), 2);
    }
}
