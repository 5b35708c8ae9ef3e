//! `upgrade-gate serve`: binds the configured address and runs the daemon until SIGINT/SIGTERM.

use std::path::PathBuf;

use super::common::{load, runtime, shutdown_signal, EXIT_CANNOT};

pub fn run(path: Option<PathBuf>) -> u8 {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = runtime().block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        crate::server::serve(config, listener, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "upgrade-gate stopped");
            EXIT_CANNOT
        }
    }
}
