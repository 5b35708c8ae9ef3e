//! Alerting: from snapshots to messages people read. The alert [`book`] decides what fires and
//! what changed (pure), [`formats`] renders it for each receiver kind (Slack, signed webhook,
//! Alertmanager), and [`delivery`] sends it through one bounded queue per receiver, retrying
//! with backoff and counting every outcome. The notification log ([`nflog`], pure) says what each
//! receiver was already told; [`shared`] holds it for the process and saves it ([`statefile`]),
//! and [`cluster`] gossips it between replicas, which take turns to send; [`seal`] says which of
//! the entries a peer or the file brings are to be trusted. In fleet mode [`fleet`] raises each
//! cluster's alerts with the book's own rules, plus one per wave that may not start.
//!
//! It reads the engine's snapshots and the receivers' configuration; it does not know the server,
//! the router or the exported metrics registry: it is handed the counters it updates.

pub mod book;
pub mod cluster;
pub mod delivery;
pub mod fleet;
pub mod formats;
pub mod nflog;
mod retry;
pub mod seal;
pub mod shared;
pub mod statefile;
