//! upgrade-gate itself: served in-process on a loopback port 0 ([`TestGate`]), for tests that
//! talk to its HTTP API, or as the built binary in a child process ([`start_process`]), for tests
//! that kill and restart it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::path::Path;
use std::process::Command;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use upgrade_gate::config::Config;
use upgrade_gate::server::ServeError;

use super::process::{ServerKind, ServerProcess};

/// A running gate; `stop` shuts it down and checks that it stopped cleanly.
pub struct TestGate {
    pub base: String,
    pub addr: SocketAddr,
    /// One client for every request, so that timings measure the gate, not client set-up.
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl TestGate {
    pub async fn start(config: Config) -> TestGate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(upgrade_gate::server::serve(config, listener, async {
            let _ = stopped.await;
        }));
        TestGate {
            base: format!("{scheme}://{addr}"),
            addr,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    /// Status and body of `GET path`.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Polls /readyz until the first evaluation has finished (deadline 30 s).
    pub async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/readyz").await.0 != 200 {
            assert!(Instant::now() < deadline, "the gate never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("shuts down in time")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

/// A loopback port that was free a moment ago: nothing listens there, or a child may bind it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The key replicas started by the tests share (`cluster.secret_file`).
pub const CLUSTER_KEY: &str = "test-cluster-key-0f1e2d3c4b5a69788796a5b4";

/// Writes [`CLUSTER_KEY`] into `dir`; returns the `cluster:` lines that point at it.
pub fn cluster_secret(dir: &Path) -> String {
    let path = dir.join("cluster.key");
    std::fs::write(&path, CLUSTER_KEY).expect("cannot write the cluster key");
    format!("  secret_file: \"{}\"\n", path.display())
}

/// Tells the gate's child processes apart: `/signals` shows each signal's description, which
/// [`start_process`] callers set to the name of the process' directory.
const PROCESS: ServerKind = ServerKind {
    owner: "GateProcess",
    name: "gate",
    install_hint: "cargo builds it for integration tests",
    ready_path: "/readyz",
    identity_path: "/signals",
};

/// `upgrade-gate serve` as a child process on a free loopback port, with the YAML that
/// `config(dir, listen)` returns; ready once its first evaluation has finished. Some signal's
/// `description` must contain `dir`'s name, so the start can tell this process from another on
/// the same port. SIGKILLed on drop.
pub fn start_process(config: impl Fn(&Path, SocketAddr) -> String) -> ServerProcess {
    ServerProcess::start(
        PROCESS,
        |_| {},
        |dir, addr| {
            let path = dir.join("gate.yaml");
            std::fs::write(&path, config(dir, addr)).expect("GateProcess: cannot write the config");
            let mut command = Command::new(env!("CARGO_BIN_EXE_upgrade-gate"));
            command.arg("serve").arg("--config").arg(path);
            command
        },
    )
}

/// `upgrade-gate serve` as a child process, for what only a process shows: its own file limit,
/// its signals, its logs. Killed on drop.
pub struct GateProcess {
    child: std::process::Child,
    pub addr: SocketAddr,
    pub base: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl GateProcess {
    /// Writes `config(listen)` to a temp dir and runs `[wrapper...] upgrade-gate serve --config`
    /// on a free loopback port (a wrapper such as `prlimit --nofile=256:256` sets what the child
    /// runs under), stderr to a file, until it has logged its first evaluation (it listens before
    /// it evaluates; the log tells with TLS and a token as well), deadline 30 s.
    pub fn start(config: impl Fn(&str) -> String, wrapper: &[&str]) -> GateProcess {
        GateProcess::start_within(config, wrapper, Duration::from_secs(30))
    }

    /// [`GateProcess::start`] with another deadline for the first evaluation (a fleet's first,
    /// whole windows for every cluster, takes longer).
    pub fn start_within(
        config: impl Fn(&str) -> String,
        wrapper: &[&str],
        within: Duration,
    ) -> GateProcess {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let path = dir.path().join("gate.yaml");
        std::fs::write(&path, config(&addr.to_string())).unwrap();
        let log = dir.path().join("stderr.log");
        let gate = env!("CARGO_BIN_EXE_upgrade-gate");
        let argv: Vec<&str> = wrapper.iter().copied().chain([gate]).collect();
        let child = std::process::Command::new(argv[0])
            .args(&argv[1..])
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
        let mut gate = GateProcess {
            child,
            addr,
            base: format!("http://{addr}"),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + within;
        while gate.logged("evaluation finished").is_none() {
            if let Some(status) = gate.child.try_wait().unwrap() {
                panic!("upgrade-gate exited ({status}):\n{}", gate.logs());
            }
            assert!(
                Instant::now() < deadline,
                "upgrade-gate never ready:\n{}",
                gate.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        gate
    }

    /// Status and body of `method path` on a new connection (HTTP/1.0), within 10 s.
    pub fn request(&self, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        super::process::http_request(self.addr, method, path, None, Duration::from_secs(10))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the gate has logged so far (JSON lines).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The fields of the first log line whose message is `message`.
    pub fn logged(&self, message: &str) -> Option<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["fields"]["message"] == message)
            .map(|l| l["fields"].clone())
    }

    /// Sends SIGHUP: reload the configuration.
    pub fn hangup(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for GateProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
