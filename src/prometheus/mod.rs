//! Prometheus: the one thing the gate reads. Range queries with a per-query timeout and a bound
//! on how many run at once ([`source`]), the ways a query fails ([`error`]), SigV4 signing for
//! Amazon Managed Service for Prometheus ([`sigv4`]), a range query's matrix read straight onto the
//! engine's grid ([`matrix`], cut into its series as it arrives by `stream`), and the `validate --online`
//! metric check ([`online`]).
//!
//! It knows the Prometheus access settings and hands back the engine's grid type; it does not
//! judge, score, or know phases, alerts or HTTP.

pub mod error;
pub mod matrix;
pub mod online;
pub mod sigv4;
pub mod source;
mod stream;
