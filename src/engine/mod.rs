//! The engine: signals and phases in, verdicts out. Pure functions of (pack, answers, time).
//!
//! It owns the pack ([`pack::Signal`], [`pack::Phase`]), thresholds, the series types that
//! answers arrive in, per-step judging ([`evaluate`]), score and decision ([`decide`]), the
//! [`snapshot`] of everything at one time, and how all of it reads as [`text`]. It may not know
//! where answers come from (Prometheus, a file, a test), how the pack was configured, or where
//! the verdicts go (HTTP, alerts, a terminal): it imports nothing from the other folders, and no
//! I/O crate. Whatever it needs from outside, such as the evaluation interval, it is handed as a
//! value. `tests/layout.rs` holds it to that.

pub mod baseline;
pub mod decide;
pub mod evaluate;
pub mod fleet;
pub mod grid;
pub mod pack;
pub mod series;
pub mod snapshot;
pub mod text;
pub mod threshold;
pub mod window_cache;
