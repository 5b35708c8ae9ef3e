//! The command line: one file per subcommand (`check`, `serve`, `wait`, `replay`, `report`,
//! `validate`, `simulate`), the clap types, and the printing (how a verdict reads is
//! [`crate::engine::text`]'s); [`fleet`] for what `check` and `wait` judge in a fleet. Each
//! command returns its exit code: 0 go/valid, 1 no-go, 2 cannot
//! evaluate or bad usage/config.
//!
//! The top of the import chain: it may use every other folder, and none uses it; but only `serve`
//! starts the daemon ([`crate::server`]): the others evaluate through [`crate::evaluation`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::config;
use crate::telemetry::LogFormat;
use check::Output;
use common::{parse_step, parse_time, ConfigFile};
use fleet::FleetArgs;
use replay::TimelineOutput;
use report::{ReportArgs, ReportFormat};
use simulate::SimulateArgs;

/// `print!` and `println!` for the commands' answers, through [`common::write_out`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::common::write_out(format_args!($($arg)*))
    };
}

macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::commands::common::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub mod check;
pub mod common;
pub mod fleet;
pub mod replay;
pub mod report;
pub mod serve;
pub mod simulate;
pub mod validate;
pub mod wait;

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

/// A past window to judge step by step, for `replay` and `report`.
#[derive(Debug, Clone, clap::Args)]
pub struct PastWindow {
    /// Start of the window: RFC 3339, or `now-6h`-style.
    #[arg(long, value_parser = parse_time)]
    pub from: DateTime<Utc>,
    /// End of the window.
    #[arg(long, value_parser = parse_time)]
    pub to: DateTime<Utc>,
    /// Time between judged steps; the config's evaluation interval when absent.
    #[arg(long, value_parser = parse_step)]
    pub step: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: evaluate every interval and serve /gate, /signals, /metrics.
    Serve {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Evaluate once and print the verdict. Exit 0 go, 1 no-go, 2 cannot evaluate.
    ///
    /// With a `fleet` section, say what to judge: --cluster, --wave or --start-wave.
    Check {
        #[command(flatten)]
        config: ConfigFile,
        /// Phase to judge; every signal when absent.
        #[arg(long)]
        phase: Option<String>,
        #[command(flatten)]
        fleet: FleetArgs,
        /// Evaluate at this time instead of now: RFC 3339, or `now-2h`-style.
        #[arg(long, value_parser = parse_time)]
        at: Option<DateTime<Utc>>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Block until a phase is go, printing progress. Exit 0 go, 1 timed out no-go, 2 error.
    ///
    /// Asks a running upgrade-gate with --server; without it, evaluates locally from --config
    /// (or the built-in default). With a fleet, --cluster, --wave or --start-wave says what to
    /// wait for.
    Wait {
        /// Phase that must be go (not with --start-wave, which waits on every phase).
        #[arg(long, required_unless_present = "start_wave")]
        phase: Option<String>,
        #[command(flatten)]
        fleet: FleetArgs,
        /// A running upgrade-gate to ask, e.g. http://upgrade-gate:8080.
        #[arg(long, conflicts_with = "config")]
        server: Option<String>,
        /// File holding the server's bearer token (`server.auth.bearer_token_file`), sent as
        /// `Authorization: Bearer`; read before every poll, so a rotated token is followed.
        #[arg(long, requires = "server")]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigFile,
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
        #[command(flatten)]
        config: ConfigFile,
        #[arg(long)]
        phase: String,
        #[command(flatten)]
        window: PastWindow,
        #[arg(long, value_enum, default_value_t = TimelineOutput::Text)]
        output: TimelineOutput,
    },
    /// The story of a past window as one self-contained HTML page (or Markdown): each phase's
    /// timeline, every signal that was not ok plotted against its lines, the incidents. Exit 0,
    /// 2 when it cannot evaluate.
    Report {
        #[command(flatten)]
        config: ConfigFile,
        /// Only this phase; every configured phase when absent.
        #[arg(long)]
        phase: Option<String>,
        /// With a `fleet` section: this cluster's report (the whole fleet's when neither this
        /// nor --wave is given).
        #[arg(long, value_name = "NAME", conflicts_with = "wave")]
        cluster: Option<String>,
        /// With a `fleet` section: this wave's report, its clusters combined.
        #[arg(long, value_name = "NAME")]
        wave: Option<String>,
        #[command(flatten)]
        window: PastWindow,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
        format: ReportFormat,
    },
    /// Check config, signal files, thresholds and PromQL syntax. Exit 0 valid, 2 invalid.
    Validate {
        #[command(flatten)]
        config: ConfigFile,
        /// Also ask Prometheus which queried metrics have no series in the last hour.
        #[arg(long)]
        online: bool,
        /// Print every signal's query as it is sent: with a `fleet` section, rewritten per store
        /// for its clusters (and the presence query); without one, as written.
        #[arg(long)]
        show_queries: bool,
    },
    /// Synthetic upgrade metrics: an exporter for Prometheus to scrape (--listen), or OpenMetrics
    /// for `promtool tsdb create-blocks-from openmetrics` (--openmetrics).
    Simulate(SimulateArgs),
}

pub fn run(cli: Cli) -> ExitCode {
    crate::telemetry::init(cli.log_format);
    let code = match cli.command {
        Command::Serve { config } => serve::run(config.path),
        Command::Check {
            config,
            phase,
            fleet,
            at,
            output,
        } => check::run(config.path, phase, at, output, fleet),
        Command::Wait {
            phase,
            fleet,
            server,
            token_file,
            config,
            timeout,
            interval,
        } => wait::run(
            wait::Question {
                phase,
                subject: fleet.subject(),
            },
            server,
            token_file,
            config.path,
            timeout,
            interval,
        ),
        Command::Replay {
            config,
            phase,
            window,
            output,
        } => replay::run(
            config.path,
            &phase,
            window.from,
            window.to,
            window.step,
            output,
        ),
        Command::Report {
            config,
            phase,
            cluster,
            wave,
            window,
            output,
            format,
        } => report::run(ReportArgs {
            config: config.path,
            phase,
            cluster,
            wave,
            from: window.from,
            to: window.to,
            step: window.step,
            output,
            format,
        }),
        Command::Validate {
            config,
            online,
            show_queries,
        } => validate::run(config.path, online, show_queries),
        Command::Simulate(args) => simulate::run(args),
    };
    ExitCode::from(code)
}
