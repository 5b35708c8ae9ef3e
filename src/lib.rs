//! upgrade-gate decides, from Prometheus, whether a Kubernetes upgrade may move to its next phase.
//!
//! # Layout
//! One folder per box of the data flow; imports run downwards (commands → server → evaluation →
//! prometheus → config → engine, server → alerting, and server → report → evaluation), the
//! engine imports nothing of the others, and of the commands only `serve` imports the daemon:
//!
//! - [`commands`]: one file per subcommand, the clap types and the printing
//! - [`config`]: YAML + environment → a validated [`config::Config`], every problem listed
//! - [`engine`]: pack, thresholds, judging, score and decision, snapshot, how verdicts read as
//!   text; pure, no I/O
//! - [`prometheus`]: one client (auth and SigV4 on the request, one error classifier), range
//!   queries with a bound and timeouts read as they stream, the `--online` check
//! - [`evaluation`]: fetch, then judge: the one path from Prometheus' answers to verdicts, for
//!   `check`, `wait`, `replay` and `serve` (whole windows, every step of a window, or only the
//!   new steps), with the baselines kept between evaluations
//! - [`alerting`]: what fires, message formats per receiver, delivery queues, the notification
//!   log, its state file and the gossip that shares it between replicas
//! - [`report`]: the story of an upgrade window (phase timelines, the signals that were not ok
//!   plotted against their lines, the incidents) as one self-contained HTML page or Markdown,
//!   from steps judged through [`evaluation`] or kept by the daemon; the server imports it
//! - [`server`]: the daemon's wiring, HTTP router, evaluation loop, exported metrics
//! - [`simulate`]: synthetic upgrade scenarios, as a file to backfill or a live exporter
//! - [`secret`], [`telemetry`]: secrets that never print, and logging set-up

pub mod alerting;
pub mod commands;
pub mod config;
pub mod engine;
pub mod evaluation;
pub mod prometheus;
pub mod report;
pub mod secret;
pub mod server;
pub mod simulate;
pub mod telemetry;
