//! `healthy`: the cluster at the end of the upgrade, every signal of the default pack healthy.

use crate::simulate::model::scene::Trouble;

/// Nothing goes wrong: every hook keeps its default.
pub struct Healthy;

impl Trouble for Healthy {}
