//! `upgrade-gate simulate`: synthetic upgrade metrics, served live for Prometheus to scrape or
//! written as OpenMetrics for a backfill; one cluster, or a fleet of them (`--clusters`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::common::{parse_step, parse_time, runtime, shutdown_signal, EXIT_CANNOT};
use crate::config::fleet::valid_label_name;
use crate::simulate::exporter::Cast;
use crate::simulate::fleet::Fleet;
use crate::simulate::scenarios::{self, Scenario, Window};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("output").required(true).args(["listen", "openmetrics"])))]
pub struct SimulateArgs {
    /// What the cluster plays; with --clusters, what every cluster plays unless --incident names
    /// it (default healthy).
    #[arg(long, value_enum, required_unless_present = "clusters")]
    scenario: Option<Scenario>,
    /// A fleet: this many clusters, named c1 to cN, every series carrying --fleet-label.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    clusters: Option<u32>,
    /// The label that names the cluster of each series (with --clusters).
    #[arg(long, default_value = "cluster", requires = "clusters")]
    fleet_label: String,
    /// CLUSTER=SCENARIO: that cluster of the fleet plays SCENARIO (repeatable; with --clusters).
    #[arg(long, value_name = "CLUSTER=SCENARIO", value_parser = parse_incident, requires = "clusters")]
    incident: Vec<(String, Scenario)>,
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

/// `c2=istio-5xx-spike` as (cluster, scenario); whether the cluster exists is checked with the fleet.
fn parse_incident(text: &str) -> Result<(String, Scenario), String> {
    let Some((cluster, scenario)) = text.split_once('=') else {
        return Err(format!("{text:?} is not CLUSTER=SCENARIO"));
    };
    if cluster.is_empty() {
        return Err(format!("{text:?} names no cluster"));
    }
    let scenario = <Scenario as clap::ValueEnum>::from_str(scenario, false).map_err(|_| {
        let known: Vec<String> = <Scenario as clap::ValueEnum>::value_variants()
            .iter()
            .filter_map(clap::ValueEnum::to_possible_value)
            .map(|v| v.get_name().to_string())
            .collect();
        format!(
            "unknown scenario {scenario:?}; the scenarios are {}",
            known.join(", ")
        )
    })?;
    Ok((cluster.to_string(), scenario))
}

/// What is simulated: the one scenario, or the fleet of `--clusters`.
fn cast(
    scenario: Option<Scenario>,
    clusters: Option<u32>,
    label: &str,
    incidents: &[(String, Scenario)],
) -> Result<Cast, String> {
    let Some(count) = clusters else {
        // clap requires --scenario without --clusters.
        return scenario
            .map(Cast::Cluster)
            .ok_or_else(|| "simulate needs --scenario NAME, or --clusters N".to_string());
    };
    if !valid_label_name(label) || label.starts_with("__") {
        return Err(format!(
            "--fleet-label {label:?} is not a label name (letters, digits and '_', not first a \
             digit, not starting with \"__\")"
        ));
    }
    let normal = scenario.unwrap_or(Scenario::Healthy);
    Fleet::new(label, count as usize, normal, incidents)
        .map(Cast::from)
        .map_err(|e| e.to_string())
}

pub fn run(args: SimulateArgs) -> u8 {
    let SimulateArgs {
        scenario,
        clusters,
        fleet_label,
        incident,
        listen,
        openmetrics,
        from,
        to,
        step,
        start,
        duration,
    } = args;
    let cast = match cast(scenario, clusters, &fleet_label, &incident) {
        Ok(cast) => cast,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CANNOT;
        }
    };
    if let Some(addr) = listen {
        let start = start.unwrap_or_else(Utc::now).timestamp();
        let length = duration.unwrap_or(SIMULATE_DURATION).as_secs() as i64;
        let window = Window::new(start, start + length);
        let result = runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            crate::simulate::exporter::serve(cast, window, listener, shutdown_signal())
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
    let step = step.as_secs() as i64;
    let text = match cast {
        Cast::Cluster(scenario) => scenarios::openmetrics_window(scenario, window, from, to, step),
        Cast::Fleet(fleet) => fleet.openmetrics(window, from, to, step),
    };
    match std::fs::write(&path, text) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            EXIT_CANNOT
        }
    }
}
