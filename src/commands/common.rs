//! What every subcommand shares: exit codes, loading the configuration, the runtime, shutdown on
//! SIGINT/SIGTERM, and the time arguments of the command line.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{self, Config};

pub const EXIT_NO_GO: u8 = 1;
pub const EXIT_CANNOT: u8 = 2;

/// `--config`, shared by every command that reads one, so that each says the same about the
/// default.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigFile {
    /// Config file (YAML). Without it, the built-in default: deploy/upgrade-gate.yaml with the
    /// queries/*.yaml pack compiled into the binary, Prometheus at http://127.0.0.1:9090. Any key
    /// can be overridden from the environment as UPGRADE_GATE__SECTION__KEY (e.g.
    /// UPGRADE_GATE__PROMETHEUS__URL).
    #[arg(long = "config", id = "config", value_name = "FILE")]
    pub path: Option<PathBuf>,
}

/// An RFC 3339 time, or `now` optionally followed by `+` or `-` and a duration (`now-2h`).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Some(offset) = s.strip_prefix("now") {
        let now = Utc::now();
        let shift = |d: &str| {
            config::parse_duration(d)
                .and_then(|d| chrono::Duration::from_std(d).map_err(|e| e.to_string()))
        };
        return match offset.chars().next() {
            None => Ok(now),
            Some('+') => Ok(now + shift(&offset[1..])?),
            Some('-') => Ok(now - shift(&offset[1..])?),
            Some(_) => Err(format!("{s:?}: expected now, now+D or now-D")),
        };
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{s:?} is not an RFC 3339 time such as 2026-11-26T10:00:00Z, nor now-1h: {e}")
        })
}

pub fn parse_step(s: &str) -> Result<Duration, String> {
    match config::parse_duration(s)? {
        d if d.as_secs() >= 1 && d.subsec_nanos() == 0 => Ok(d),
        _ => Err(format!(
            "{s:?} must be a whole number of seconds, at least 1s"
        )),
    }
}

/// Writes to standard output what `print!` would, without its panic when the reader has gone
/// (`validate --show-queries | head`): the rest is dropped and the command still exits with its
/// own code, which for `check` and `wait` is the gate's answer.
pub fn write_out(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("cannot write to standard output: {e}");
        }
    }
}

/// The validated configuration, or the exit code after printing every problem.
pub fn load(path: Option<PathBuf>) -> Result<Config, u8> {
    config::load(path.as_deref()).map_err(|e| {
        eprint!("{e}");
        EXIT_CANNOT
    })
}

/// The configuration of a command that evaluates, refused (exit 2) when it has a `fleet` section:
/// until clusters are judged one by one, evaluating would blend them.
pub fn load_single_cluster(path: Option<PathBuf>) -> Result<Config, u8> {
    let config = load(path)?;
    if config.fleet.is_some() {
        let file = config.source.as_ref().map(|p| p.display().to_string());
        let file = file.as_deref().unwrap_or("the configuration");
        eprintln!("{file}: key `fleet`: {}", config::FLEET_NOT_EVALUATED);
        return Err(EXIT_CANNOT);
    }
    Ok(config)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
