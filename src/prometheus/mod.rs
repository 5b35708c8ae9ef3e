//! Prometheus: the one thing the gate reads. One client ([`client`]): one request path with
//! authentication as a step on it (headers, basic, bearer token file, TLS, SigV4 signing from
//! [`sigv4`]), one reading of the API envelope and one classifier of the ways a query fails
//! ([`error`]). On it, range queries with a per-query timeout and a bound on how many run at once
//! ([`source`]), a range query's matrix read straight onto the engine's grid ([`matrix`], cut
//! into its series as it arrives by `stream`), and the `validate --online` metric check
//! ([`online`]).
//!
//! It knows the Prometheus access settings and hands back the engine's grid type; it does not
//! judge, score, or know phases, alerts or HTTP.

pub mod client;
pub mod error;
pub mod matrix;
pub mod online;
pub mod sigv4;
pub mod source;
mod stream;
