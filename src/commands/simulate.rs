//! `upgrade-gate simulate`: synthetic upgrade metrics, served live for Prometheus to scrape or
//! written as OpenMetrics for a backfill.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::common::{parse_step, parse_time, runtime, shutdown_signal, EXIT_CANNOT};
use crate::simulate::scenarios::{self, Scenario, Window};

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

pub fn run(args: SimulateArgs) -> u8 {
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
            crate::simulate::exporter::serve(scenario, window, listener, shutdown_signal())
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
    let text = scenarios::openmetrics_window(scenario, window, from, to, step.as_secs() as i64);
    match std::fs::write(&path, text) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            EXIT_CANNOT
        }
    }
}
