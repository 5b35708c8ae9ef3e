//! upgrade-gate decides, from Prometheus, whether a Kubernetes upgrade may move to its next phase.
//!
//! # Layout
//! One module per box of the data flow:
//!
//! - [`config`]: YAML + environment → validated [`config::Config`] (every problem listed)
//! - [`pack`] and [`threshold`]: the signal pack: [`pack::Signal`], [`pack::Phase`], [`threshold::Threshold`]
//! - [`source`]: range queries against Prometheus, bounded and timed out
//! - [`evaluate`]: series → per-step status of a signal (pure)
//! - [`decide`]: score and go/no-go per phase, with reasons (pure)
//! - [`snapshot`]: one evaluation of everything at one time
//! - [`scheduler`], [`serve`], [`http`], [`metrics`]: the daemon
//! - [`alert`], [`receiver`], [`dispatch`], [`secret`]: alerts, their formats, delivery, secrets
//! - [`cli`], [`report`], [`telemetry`]: the command line edge
//! - [`demo_data`], [`simulate`]: synthetic upgrade metrics (a file to backfill, or a live exporter) for the demo and the tests
//! - [`wait`], [`replay`], [`online`]: the pipeline step, the past timeline, the online lint
//! - [`sigv4`]: signed requests for Amazon Managed Service for Prometheus

pub mod alert;
pub mod cli;
pub mod config;
pub mod decide;
pub mod demo_data;
pub mod dispatch;
pub mod evaluate;
pub mod http;
pub mod metrics;
pub mod online;
pub mod pack;
pub mod receiver;
pub mod replay;
pub mod report;
pub mod scheduler;
pub mod secret;
pub mod serve;
pub mod sigv4;
pub mod simulate;
pub mod snapshot;
pub mod source;
pub mod telemetry;
pub mod threshold;
pub mod wait;
