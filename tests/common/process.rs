//! A server binary run as a throwaway child process on a free loopback port:
//! what [`TestPrometheus`](super::prometheus::TestPrometheus) and
//! [`TestAlertmanager`](super::alertmanager::TestAlertmanager) have in common.
//!
//! [`ServerProcess::start`] creates a temp dir, lets the caller fill it (config
//! files, data), picks a free port on 127.0.0.1, spawns the command the caller
//! builds for that address (stdin and stdout to /dev/null, stderr to
//! `<name>.stderr` in the temp dir), and polls until the server is ready and
//! provably ours, with a deadline (no fixed sleeps). If the server cannot bind
//! its port (another process took it between probing and binding), the whole
//! start (new temp dir, new port) is retried, up to [`START_ATTEMPTS`] attempts
//! in all. The child is killed and reaped on drop, then its temp dir is removed.
//!
//! Only std is used (plus `tempfile`), including a minimal blocking HTTP/1.0
//! client, and every call blocks.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one start attempt may take to get the server ready.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);
/// Whole start attempts, each on a new port (another process may take the
/// port between probing it and the server binding it).
pub const START_ATTEMPTS: u32 = 3;
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Short, so a foreign listener that never answers on our port does not stall
/// the poll; a ready server answers in well under a millisecond.
pub const POLL_HTTP_TIMEOUT: Duration = Duration::from_millis(500);
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What tells one kind of server from another.
#[derive(Clone, Copy)]
pub struct ServerKind {
    /// Starts every message, e.g. "TestPrometheus".
    pub owner: &'static str,
    /// Short name, e.g. "prometheus": names the temp dir (`upgrade-gate-<name>-*`),
    /// the stderr file (`<name>.stderr`) and the stderr section of panic messages.
    pub name: &'static str,
    /// Follows "cannot run `<program>` (<error>); " when the binary cannot be run.
    pub install_hint: &'static str,
    /// GET path that answers 200 once the server is ready, e.g. "/-/ready".
    pub ready_path: &'static str,
    /// GET path whose 200 answer contains the temp dir's name (the command must
    /// pass it to the server somehow). Another process could hold our port while
    /// our server fails to bind it: a ready answer only counts once this shows
    /// that it comes from our server. [`IDENTITY_IN_LOG`] for a server that
    /// cannot show it, but logs `listen=<addr>` once it has bound its port.
    pub identity_path: &'static str,
}

/// `identity_path` of a server whose stderr says `listen=<addr>` once it is bound (upgrade-gate's
/// log lines): that line, from our child, is what proves the ready answer is ours. On a
/// [`ServerProcess::restart`] the first run's line still counts, so the proof is weaker there.
pub const IDENTITY_IN_LOG: &str = "";

/// A server child process on a free loopback port; killed and reaped on drop.
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    url: String,
    /// The program that was run, for messages.
    program: String,
    kind: ServerKind,
    /// Declared last, so it is removed after `Drop::drop` has reaped the child.
    dir: tempfile::TempDir,
}

struct PortTaken {
    stderr: String,
}

impl ServerProcess {
    /// Per attempt: creates a temp dir, calls `prepare(dir)`, picks a free
    /// loopback port, spawns `command(dir, addr)` (in `dir`, stderr captured) and
    /// waits until `kind.ready_path` answers 200 and `kind.identity_path` names
    /// `dir` (readiness poll, no fixed sleeps), with a deadline
    /// ([`READY_DEADLINE`]) and a panic message including the server's stderr if
    /// it exits or never becomes ready. If the server exits because its port is
    /// taken ("address already in use"), the whole start is retried on a new
    /// port, up to [`START_ATTEMPTS`] attempts in all.
    pub fn start(
        kind: ServerKind,
        prepare: impl Fn(&Path),
        command: impl Fn(&Path, SocketAddr) -> Command,
    ) -> ServerProcess {
        let mut last_stderr = String::new();
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start(kind, &prepare, &command) {
                Ok(server) => return server,
                Err(PortTaken { stderr }) => {
                    if attempt < START_ATTEMPTS {
                        eprintln!(
                            "{}: port taken (attempt {attempt}/{START_ATTEMPTS}), \
                             retrying on another port",
                            kind.owner
                        );
                    }
                    last_stderr = stderr;
                }
            }
        }
        panic!(
            "{}: {} could not bind a loopback port in {START_ATTEMPTS} \
             attempts; last stderr:\n{last_stderr}",
            kind.owner, kind.name
        );
    }

    /// Base URL, e.g. "http://127.0.0.1:41234".
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The loopback address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The temp dir the server runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process id of the child.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server has written to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.dir.path().join(format!("{}.stderr", self.kind.name)))
    }

    /// Sends `method path_and_query` (with `body` as JSON, if any) and returns
    /// (status, body) whatever the status. Panics if there is no HTTP answer.
    pub fn request(&self, method: &str, path_and_query: &str, body: Option<&str>) -> (u16, String) {
        http_request(self.addr, method, path_and_query, body, HTTP_TIMEOUT)
            .unwrap_or_else(|e| panic!("{method} {}{path_and_query} failed: {e}", self.url))
    }

    /// GETs `path_and_query` and returns the body; panics unless the status is 200.
    pub fn get(&self, path_and_query: &str) -> String {
        let (status, body) = self.request("GET", path_and_query, None);
        assert_eq!(
            status, 200,
            "GET {}{path_and_query} answered {status}: {body}",
            self.url
        );
        body
    }

    /// Kills the server (SIGKILL) and reaps it: its port refuses connections until
    /// [`ServerProcess::restart`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs `command(dir, addr)` again, on the same port and in the same directory (its data
    /// kept), and waits until it is ready; panics with its stderr if it is not.
    pub fn restart(&mut self, command: impl Fn(&Path, SocketAddr) -> Command) {
        let owner = self.kind.owner;
        let stderr = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join(format!("{}.stderr", self.kind.name)))
            .unwrap_or_else(|e| panic!("{owner}: cannot open stderr file: {e:?}"));
        self.child = command(self.dir.path(), self.addr)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{owner}: cannot run `{}` again: {e}", self.program));
        if let Err(PortTaken { stderr }) = self.wait_ready() {
            panic!("{owner}: its port was taken while it was down:\n{stderr}");
        }
    }

    fn try_start(
        kind: ServerKind,
        prepare: &impl Fn(&Path),
        command: &impl Fn(&Path, SocketAddr) -> Command,
    ) -> Result<ServerProcess, PortTaken> {
        let owner = kind.owner;
        let dir = tempfile::Builder::new()
            .prefix(&format!("upgrade-gate-{}-", kind.name))
            .tempdir()
            .unwrap_or_else(|e| panic!("{owner}: cannot create temp dir: {e:?}"));
        prepare(dir.path());

        let port = free_loopback_port(owner);
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let stderr = File::create(dir.path().join(format!("{}.stderr", kind.name)))
            .unwrap_or_else(|e| panic!("{owner}: cannot create stderr file: {e:?}"));
        let mut command = command(dir.path(), addr);
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{owner}: cannot run `{program}` ({e}); {}",
                    kind.install_hint
                )
            });
        let mut server = ServerProcess {
            child,
            addr,
            url: format!("http://{addr}"),
            program,
            kind,
            dir,
        };
        // On any panic below, dropping `server` kills the child.
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), PortTaken> {
        let started = Instant::now();
        // Unique to this instance; the answer of `identity_path` contains it.
        let marker = self
            .dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("temp dir name is UTF-8")
            .to_owned();
        loop {
            let exited = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("{}: try_wait failed: {e:?}", self.kind.owner));
            if let Some(status) = exited {
                let stderr = self.stderr();
                // Go says "address already in use", Rust "Address already in use".
                if stderr.to_lowercase().contains("address already in use") {
                    return Err(PortTaken { stderr });
                }
                panic!(
                    "{}",
                    self.failure(&format!("exited ({status}) before becoming ready"), &stderr)
                );
            }
            // If another instance answers on our port, our child exits with
            // "address already in use" shortly and the start is retried.
            if self.answers(self.kind.ready_path, |_| true) && self.is_ours(&marker) {
                return Ok(());
            }
            if started.elapsed() >= READY_DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr();
                panic!(
                    "{}",
                    self.failure(
                        &format!("did not become ready within {READY_DEADLINE:?}"),
                        &stderr
                    )
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Whether the server on our port is our child: its identity answer names `marker` (the
    /// temp dir), or its log names the address it listens on.
    fn is_ours(&self, marker: &str) -> bool {
        if self.kind.identity_path == IDENTITY_IN_LOG {
            return self.stderr().contains(&format!("listen={}", self.addr));
        }
        self.answers(self.kind.identity_path, |body| body.contains(marker))
    }

    /// Whether GET `path` answers 200 (within [`POLL_HTTP_TIMEOUT`]) with a body that passes `check`.
    fn answers(&self, path: &str, check: impl Fn(&str) -> bool) -> bool {
        matches!(
            http_request(self.addr, "GET", path, None, POLL_HTTP_TIMEOUT),
            Ok((200, body)) if check(&body)
        )
    }

    fn failure(&self, what: &str, stderr: &str) -> String {
        format!(
            "{}: `{}` on {} {what}\n--- {} stderr ---\n{stderr}",
            self.kind.owner, self.program, self.url, self.kind.name
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SIGKILL: nothing of its state needs to survive, and it is faster than a clean shutdown.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program --config.file=<config> --web.listen-address=<addr>`: the two flags
/// that every server of the Prometheus family (prometheus, alertmanager) takes.
pub fn server_command(program: &str, config: &Path, addr: SocketAddr) -> Command {
    let mut command = Command::new(program);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={addr}"));
    command
}

fn free_loopback_port(owner: &str) -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{owner}: cannot bind 127.0.0.1:0: {e:?}"))
        .port()
    // The listener is dropped here, releasing the port for the server.
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

/// Minimal blocking HTTP request (also for tests that time the answer). HTTP/1.0, so the server neither keeps the
/// connection alive nor (normally) uses chunked encoding; the body is
/// everything up to EOF. A `body` is sent as JSON.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path_and_query} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n"
    )?;
    match body {
        Some(body) => write!(
            stream,
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?,
        None => write!(stream, "\r\n")?,
    }
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;

    let invalid = |msg: &str| io::Error::new(io::ErrorKind::InvalidData, msg.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of HTTP headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid("bad HTTP status line"))?;
    let chunked = head.lines().skip(1).any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| invalid("bad chunked body"))?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// Runs the upgrade-gate binary with `args`: (exit code, stdout, stderr).
pub fn gate_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_upgrade-gate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
