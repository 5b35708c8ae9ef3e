//! Fleet mode on the command line: which cluster or wave `check` and `wait` judge
//! (`--cluster`, `--wave`, `--start-wave`), checked against the `fleet` section before anything is
//! queried, and how their answers read in a terminal.
//!
//! A fleet configuration judges many clusters; a command that said nothing about which one would
//! have to pick for the user, so it is refused with the option to add. The JSON bodies are the
//! HTTP routes' own (`/gate/{phase}?cluster=`, `?wave=`, `/waves/{name}`), so a pipeline can
//! switch between the daemon and a local evaluation without parsing anything new.

use std::fmt::Write;

use crate::config::{Config, FleetConfig};
use crate::engine::decide::{Decision, Verdict};
use crate::engine::fleet::{ClusterVerdict, FleetSnapshot, WaveState, WaveVerdict};
use crate::engine::text::fmt_number;
use crate::engine::text::terminal::{table, verdict_text};

use super::common::{EXIT_CANNOT, EXIT_NO_GO};

/// What a fleet command judges: at most one of the three.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(multiple = false)]
pub struct FleetArgs {
    /// With a `fleet` section: judge this cluster alone.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// With a `fleet` section: go only when every cluster of this wave is go for the phase.
    #[arg(long, value_name = "NAME")]
    pub wave: Option<String>,
    /// With a `fleet` section: may this wave start? Every cluster of every earlier wave go for
    /// every phase, and those of the wave just before go for this wave's soak.
    #[arg(long, value_name = "NAME", conflicts_with = "phase")]
    pub start_wave: Option<String>,
}

/// The cluster or wave a fleet command asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Cluster(String),
    Wave(String),
    /// May this wave start?
    StartWave(String),
}

impl FleetArgs {
    pub fn subject(self) -> Option<Subject> {
        self.cluster
            .map(Subject::Cluster)
            .or(self.wave.map(Subject::Wave))
            .or(self.start_wave.map(Subject::StartWave))
    }
}

impl Subject {
    pub fn option(&self) -> &'static str {
        match self {
            Subject::Cluster(_) => "--cluster",
            Subject::Wave(_) => "--wave",
            Subject::StartWave(_) => "--start-wave",
        }
    }

    /// The query string of the HTTP route that answers it (`/waves/{name}` takes none).
    pub fn query(&self) -> Option<(&'static str, &str)> {
        match self {
            Subject::Cluster(c) => Some(("cluster", c)),
            Subject::Wave(w) => Some(("wave", w)),
            Subject::StartWave(_) => None,
        }
    }

    /// How a sentence names it with `phase`: `cluster c2, phase istio`, `wave prod`.
    pub fn said(&self, phase: &str) -> String {
        match self {
            Subject::Cluster(c) => format!("cluster {c}, phase {phase}"),
            Subject::Wave(w) => format!("wave {w}, phase {phase}"),
            Subject::StartWave(w) => format!("wave {w}"),
        }
    }
}

/// Checks the options against the configuration, printing what to change (exit 2): fleet
/// options without a `fleet` section, a `fleet` section without one, an unlisted cluster or wave.
pub fn checked(config: &Config, subject: Option<Subject>) -> Result<Option<Subject>, u8> {
    let file = config.source.as_ref().map(|p| p.display().to_string());
    let file = file.as_deref().unwrap_or("the configuration");
    let problem = match (&config.fleet, &subject) {
        (None, None) => None,
        (None, Some(s)) => Some(format!(
            "{} needs a `fleet` section, and {file} has none: it gates one cluster; drop {}",
            s.option(),
            s.option()
        )),
        (Some(fleet), None) => Some(format!(
            "{file} has a `fleet` section: say what to judge with --cluster NAME (clusters: {}), \
             --wave NAME or --start-wave NAME (waves: {})",
            listed(&clusters(fleet)),
            listed(&waves(fleet))
        )),
        (Some(fleet), Some(Subject::Cluster(c))) => {
            (!clusters(fleet).contains(&c.as_str())).then(|| {
                format!(
                    "unknown cluster {c:?}; known clusters: {}",
                    listed(&clusters(fleet))
                )
            })
        }
        (Some(fleet), Some(Subject::Wave(w) | Subject::StartWave(w))) => (!waves(fleet)
            .contains(&w.as_str()))
        .then(|| format!("unknown wave {w:?}; known waves: {}", listed(&waves(fleet)))),
    };
    match problem {
        Some(p) => {
            eprintln!("{p}");
            Err(EXIT_CANNOT)
        }
        None => Ok(subject),
    }
}

/// How many names a message lists: a fleet of 200 clusters is not repeated in full.
const LISTED: usize = 20;

/// `a, b, c`, or the first [`LISTED`] and `and N more`.
fn listed(names: &[&str]) -> String {
    let shown = names[..names.len().min(LISTED)].join(", ");
    match names.len().saturating_sub(LISTED) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

fn clusters(fleet: &FleetConfig) -> Vec<&str> {
    fleet
        .waves
        .iter()
        .flat_map(|w| &w.clusters)
        .map(String::as_str)
        .collect()
}

fn waves(fleet: &FleetConfig) -> Vec<&str> {
    fleet.waves.iter().map(|w| w.name.as_str()).collect()
}

/// One fleet answer, as a route serves it.
pub enum Answer<'a> {
    Cluster(ClusterVerdict<'a>),
    Wave {
        verdict: WaveVerdict,
        /// Each cluster of the wave with its verdict, for what the wave's lines leave out.
        members: Vec<(&'a str, &'a Verdict)>,
    },
    StartWave(&'a WaveState),
}

impl<'a> Answer<'a> {
    /// `subject` in `snapshot`; `None` only for a cluster, wave or phase the snapshot does not
    /// hold, which [`subject`] and the phase check have ruled out.
    pub fn of(snapshot: &'a FleetSnapshot, subject: &Subject, phase: &str) -> Option<Answer<'a>> {
        Some(match subject {
            Subject::Cluster(c) => Answer::Cluster(snapshot.cluster(c)?.verdict(phase)?),
            Subject::Wave(w) => Answer::Wave {
                verdict: snapshot.wave_verdict(w, phase)?,
                members: snapshot
                    .clusters
                    .iter()
                    .filter(|c| &c.wave == w)
                    .map(|c| Some((c.cluster.as_str(), c.snapshot.verdict(phase)?)))
                    .collect::<Option<_>>()?,
            },
            Subject::StartWave(w) => Answer::StartWave(snapshot.wave(w)?),
        })
    }

    pub fn decision(&self) -> Decision {
        match self {
            Answer::Cluster(v) => v.verdict.decision,
            Answer::Wave { verdict, .. } => verdict.decision,
            Answer::StartWave(s) => s.decision,
        }
    }

    /// 0 go, 1 no-go, 2 unknown (as `check` of one cluster: a query error is unknown unless a
    /// known failure makes it no-go).
    pub fn exit_code(&self) -> u8 {
        match self.decision() {
            Decision::Go => 0,
            Decision::NoGo => EXIT_NO_GO,
            Decision::Unknown => EXIT_CANNOT,
        }
    }

    /// The body the HTTP route answers with.
    pub fn json(&self) -> String {
        let json = match self {
            Answer::Cluster(v) => serde_json::to_string_pretty(v),
            Answer::Wave { verdict, .. } => serde_json::to_string_pretty(verdict),
            Answer::StartWave(s) => serde_json::to_string_pretty(s),
        };
        json.expect("fleet answers serialize")
    }

    /// How `check` prints it.
    pub fn text(&self) -> String {
        match self {
            Answer::Cluster(v) => format!("cluster {}, {}", v.cluster, verdict_text(v.verdict)),
            Answer::Wave { verdict, .. } => wave_verdict_text(verdict),
            Answer::StartWave(s) => wave_state_text(s),
        }
    }
}

fn decision_word(d: Decision) -> &'static str {
    match d {
        Decision::Go => "GO",
        Decision::NoGo => "NO-GO",
        Decision::Unknown => "UNKNOWN",
    }
}

/// `wave canary, phase istio: NO-GO  score 50 (min 90)  at ...`, the reasons, then a line per
/// cluster, those that block first.
fn wave_verdict_text(v: &WaveVerdict) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wave {}, phase {}: {}  score {} (min {})  at {}",
        v.wave,
        v.phase,
        decision_word(v.decision),
        fmt_number(v.score),
        fmt_number(v.min_score),
        v.evaluated_at.to_rfc3339()
    );
    for r in &v.reasons {
        let _ = writeln!(out, "  - {r}");
    }
    let rows: Vec<[String; 4]> = v
        .clusters
        .iter()
        .map(|c| {
            [
                c.cluster.clone(),
                decision_word(c.decision).to_string(),
                fmt_number(c.score),
                c.stable_since.map_or("not healthy".into(), |s| {
                    format!("healthy since {}", s.to_rfc3339())
                }),
            ]
        })
        .collect();
    table(&mut out, ["CLUSTER", "DECISION", "SCORE", "HEALTHY"], &rows);
    out
}

/// `wave prod, start: NO-GO  at ...  soak 2h, 1h10m left`, the reasons, then the blocking
/// clusters with their phases and signals.
fn wave_state_text(s: &WaveState) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wave {}, start: {}  at {}  soak {}, {} left",
        s.wave,
        decision_word(s.decision),
        s.evaluated_at.to_rfc3339(),
        humantime::format_duration(s.soak),
        humantime::format_duration(s.soak_left)
    );
    for r in &s.reasons {
        let _ = writeln!(out, "  - {r}");
    }
    if !s.blocking.is_empty() {
        let rows: Vec<[String; 4]> = s
            .blocking
            .iter()
            .map(|b| {
                [
                    format!("{} ({})", b.cluster, b.wave),
                    decision_word(b.decision).to_string(),
                    b.phases.join(", "),
                    b.signals.join(", "),
                ]
            })
            .collect();
        table(
            &mut out,
            ["BLOCKING CLUSTER", "DECISION", "PHASES", "SIGNALS"],
            &rows,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_list_of_names_is_cut() {
        assert_eq!(listed(&["a", "b"]), "a, b");
        let many: Vec<String> = (1..=25).map(|i| format!("c{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let said = listed(&many);
        assert!(said.starts_with("c1, c2, "), "{said}");
        assert!(said.ends_with(", c20 and 5 more"), "{said}");
    }
}
