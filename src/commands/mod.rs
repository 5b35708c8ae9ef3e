//! The command line: `serve`, `check`, `validate`, `simulate`. Each command returns its exit code:
//! 0 go/valid, 1 no-go, 2 cannot evaluate or bad usage/config.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Config};
use crate::decide::Decision;
use crate::demo_data::{self, Scenario, Window};
use crate::evaluate::Status;
use crate::pack::ALL_PHASES;
use crate::snapshot::Snapshot;
use crate::source::PrometheusSource;
use crate::wait::{Outcome, Target};

const EXIT_NO_GO: u8 = 1;
const EXIT_CANNOT: u8 = 2;
/// How far back `validate --online` looks for a metric's series.
const ONLINE_LOOKBACK_SECS: i64 = 3600;

#[derive(Debug, Parser)]
#[command(
    name = "upgrade-gate",
    version,
    about = "Go/no-go gate for Kubernetes upgrade phases, from Prometheus"
)]
pub struct Cli {
    /// Log format (logs go to standard error).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TimelineOutput {
    Text,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: evaluate every interval and serve /gate, /signals, /metrics.
    Serve {
        /// Config file (YAML); the built-in default pack when absent.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Evaluate once and print the verdict. Exit 0 go, 1 no-go, 2 cannot evaluate.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Phase to judge; every signal when absent.
        #[arg(long)]
        phase: Option<String>,
        /// Evaluate at this time instead of now: RFC 3339, or `now-2h`-style.
        #[arg(long, value_parser = parse_time)]
        at: Option<DateTime<Utc>>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Block until a phase is go, printing progress. Exit 0 go, 1 timed out no-go, 2 error.
    Wait {
        #[arg(long)]
        phase: String,
        /// A running upgrade-gate to ask, e.g. http://upgrade-gate:8080.
        #[arg(long, conflicts_with = "config")]
        server: Option<String>,
        /// Evaluate locally with this config instead of asking a server (the built-in pack when
        /// neither is given).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Give up after this long.
        #[arg(long, default_value = "30m", value_parser = config::parse_duration)]
        timeout: Duration,
        /// Time between polls.
        #[arg(long, default_value = "15s", value_parser = parse_step)]
        interval: Duration,
    },
    /// The decision timeline of a phase over a past window: when it would have turned no-go, why,
    /// and when it would have allowed the next phase. One range query per signal.
    Replay {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        phase: String,
        /// Start of the window: RFC 3339, or `now-6h`-style.
        #[arg(long, value_parser = parse_time)]
        from: DateTime<Utc>,
        /// End of the window.
        #[arg(long, value_parser = parse_time)]
        to: DateTime<Utc>,
        /// Time between judged steps; the config's evaluation interval when absent.
        #[arg(long, value_parser = parse_step)]
        step: Option<Duration>,
        #[arg(long, value_enum, default_value_t = TimelineOutput::Text)]
        output: TimelineOutput,
    },
    /// Check config, signal files, thresholds and PromQL syntax. Exit 0 valid, 2 invalid.
    Validate {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also ask Prometheus which queried metrics have no series in the last hour.
        #[arg(long)]
        online: bool,
    },
    /// Synthetic upgrade metrics: an exporter for Prometheus to scrape (--listen), or OpenMetrics
    /// for `promtool tsdb create-blocks-from openmetrics` (--openmetrics).
    Simulate(SimulateArgs),
}

/// An RFC 3339 time, or `now` optionally followed by `+` or `-` and a duration (`now-2h`).
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
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

fn parse_step(s: &str) -> Result<Duration, String> {
    match config::parse_duration(s)? {
        d if d.as_secs() >= 1 && d.subsec_nanos() == 0 => Ok(d),
        _ => Err(format!(
            "{s:?} must be a whole number of seconds, at least 1s"
        )),
    }
}

pub fn run(cli: Cli) -> ExitCode {
    crate::telemetry::init(cli.log_format);
    let code = match cli.command {
        Command::Serve { config } => serve(config),
        Command::Check {
            config,
            phase,
            at,
            output,
        } => check(config, phase, at, output),
        Command::Wait {
            phase,
            server,
            config,
            timeout,
            interval,
        } => wait(phase, server, config, timeout, interval),
        Command::Replay {
            config,
            phase,
            from,
            to,
            step,
            output,
        } => replay(config, &phase, from, to, step, output),
        Command::Validate { config, online } => validate(config, online),
        Command::Simulate(args) => simulate(args),
    };
    ExitCode::from(code)
}

fn load(path: Option<PathBuf>) -> Result<Config, u8> {
    config::load(path.as_deref()).map_err(|e| {
        eprint!("{e}");
        EXIT_CANNOT
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

fn validate(path: Option<PathBuf>, online: bool) -> u8 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!(
        "valid: {} signals in {} phases ({})",
        config.pack.signals.len(),
        config.pack.phases.len(),
        config
            .pack
            .phases
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !online {
        return 0;
    }
    let now = Utc::now().timestamp();
    let known = PrometheusSource::new(&config.prometheus).and_then(|source| {
        runtime().block_on(source.metric_names(now - ONLINE_LOOKBACK_SECS, now))
    });
    let known = match known {
        Ok(k) => k,
        Err(e) => {
            eprintln!("cannot check metrics online: {e}");
            return EXIT_CANNOT;
        }
    };
    let absent = crate::online::absent(&config.pack.signals, &known);
    if absent.is_empty() {
        println!(
            "online: every metric the pack queries has series in Prometheus over the last hour"
        );
        return 0;
    }
    eprintln!(
        "{} signal{} query metrics that Prometheus has no series of over the last hour:",
        absent.len(),
        if absent.len() == 1 { "" } else { "s" }
    );
    for a in &absent {
        eprintln!("  - {a}");
    }
    EXIT_CANNOT
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("output").required(true).args(["listen", "openmetrics"])))]
pub struct SimulateArgs {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Serve GET /metrics on this address, following the scenario in real time (scrape it with
    /// `honor_labels: true`).
    #[arg(long, conflicts_with_all = ["from", "to", "step"])]
    listen: Option<std::net::SocketAddr>,
    /// File to write.
    #[arg(long, requires_all = ["from", "to"])]
    openmetrics: Option<PathBuf>,
    /// First sample time: RFC 3339, or `now-2h`-style.
    #[arg(long, value_parser = parse_time, requires = "openmetrics")]
    from: Option<DateTime<Utc>>,
    /// Last sample time: RFC 3339, or `now+10m`-style.
    #[arg(long, value_parser = parse_time, requires = "openmetrics")]
    to: Option<DateTime<Utc>>,
    /// Time between samples.
    #[arg(long, default_value = "30s", value_parser = parse_step)]
    step: Duration,
    /// Start of the scenario's window, on which its trouble is placed: RFC 3339, or `now-1h`-style.
    /// Default: --from, or now with --listen.
    #[arg(long, value_parser = parse_time)]
    start: Option<DateTime<Utc>>,
    /// Length of the scenario's window. Default: --from to --to, or 20m with --listen.
    #[arg(long, value_parser = parse_step)]
    duration: Option<Duration>,
}

/// The scenario's window with `simulate --listen` when `--duration` is absent.
const SIMULATE_DURATION: Duration = Duration::from_secs(20 * 60);

fn simulate(args: SimulateArgs) -> u8 {
    let SimulateArgs {
        scenario,
        listen,
        openmetrics,
        from,
        to,
        step,
        start,
        duration,
    } = args;
    if let Some(addr) = listen {
        let start = start.unwrap_or_else(Utc::now).timestamp();
        let length = duration.unwrap_or(SIMULATE_DURATION).as_secs() as i64;
        let window = Window::new(start, start + length);
        let result = runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            crate::simulate::serve(scenario, window, listener, shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        });
        return match result {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!(error = %e, "simulator stopped");
                EXIT_CANNOT
            }
        };
    }
    // clap enforces --openmetrics with --from and --to when --listen is absent.
    let (Some(path), Some(from), Some(to)) = (openmetrics, from, to) else {
        eprintln!("simulate needs --listen ADDR, or --openmetrics FILE --from T --to T");
        return EXIT_CANNOT;
    };
    if to < from {
        eprintln!("--to {to} is before --from {from}");
        return EXIT_CANNOT;
    }
    let (from, to) = (from.timestamp(), to.timestamp());
    let start = start.map_or(from, |s| s.timestamp());
    let length = duration.map_or(to - from, |d| d.as_secs() as i64);
    let window = Window::new(start, start + length);
    let text = demo_data::openmetrics_window(scenario, window, from, to, step.as_secs() as i64);
    match std::fs::write(&path, text) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            EXIT_CANNOT
        }
    }
}

fn check(
    path: Option<PathBuf>,
    phase: Option<String>,
    at: Option<DateTime<Utc>>,
    output: Output,
) -> u8 {
    let mut config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let phase = phase.unwrap_or_else(|| ALL_PHASES.to_string());
    if config.pack.phase(&phase).is_none() {
        eprintln!(
            "unknown phase {phase:?}; known phases: {}",
            config.pack.phase_names().join(", ")
        );
        return EXIT_CANNOT;
    }
    // Only the phase's own signals need querying.
    config.pack.signals.retain(|s| s.in_phase(&phase));
    let source = match PrometheusSource::new(&config.prometheus) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CANNOT;
        }
    };
    let at = at.unwrap_or_else(Utc::now).timestamp();
    let snapshot = runtime().block_on(Snapshot::take(&config, &source, at));
    let verdict = snapshot
        .verdict(&phase)
        .expect("the snapshot judges every known phase");
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(verdict).expect("a verdict serializes")
        ),
        Output::Text => print!("{}", crate::report::text(verdict)),
    }
    if verdict.signals.iter().any(|s| s.status == Status::Error) {
        EXIT_CANNOT
    } else if verdict.decision == Decision::Go {
        0
    } else {
        EXIT_NO_GO
    }
}

fn replay(
    path: Option<PathBuf>,
    phase: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Option<Duration>,
    output: TimelineOutput,
) -> u8 {
    let mut config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(step) = step {
        // `for` and `stable_for` are judged at the replay's grain.
        config.evaluation.interval = step;
    }
    let source = match PrometheusSource::new(&config.prometheus) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CANNOT;
        }
    };
    let rows = match runtime().block_on(crate::replay::replay(
        &config,
        &source,
        phase,
        from.timestamp(),
        to.timestamp(),
    )) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CANNOT;
        }
    };
    match output {
        TimelineOutput::Text => print!(
            "{}",
            crate::replay::text(phase, &rows, config.evaluation.interval.as_secs() as i64)
        ),
        TimelineOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        ),
        TimelineOutput::Csv => print!("{}", crate::replay::csv(&rows)),
    }
    0
}

fn wait(
    phase: String,
    server: Option<String>,
    path: Option<PathBuf>,
    timeout: Duration,
    interval: Duration,
) -> u8 {
    let target = match server {
        Some(url) => Target::Server(url),
        None => {
            let mut config = match load(path) {
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
    let outcome = runtime().block_on(crate::wait::wait(
        &target,
        &phase,
        timeout,
        interval,
        &mut std::io::stdout(),
        live,
    ));
    match &outcome {
        Outcome::Go => println!("phase {phase} is go"),
        Outcome::TimedOut => eprintln!(
            "phase {phase} still no-go after {}",
            humantime::format_duration(timeout)
        ),
        Outcome::Error(e) => eprintln!("cannot tell whether phase {phase} is go: {e}"),
    }
    outcome.exit_code()
}

fn serve(path: Option<PathBuf>) -> u8 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = runtime().block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        crate::serve::serve(config, listener, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "upgrade-gate stopped");
            EXIT_CANNOT
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
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
