//! Connections have deadlines and the server has limits, on real sockets on loopback: idle
//! connections beyond the cap (under a low open-file limit) leave the gate answering and its
//! evaluations reaching Prometheus, and are closed at the header timeout; a client sending a byte
//! per second is cut off; bodies are limited and slow answers time out.

mod common;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::data::{around, now, OpenMetrics};
use common::gate::{GateProcess, TestGate};
use common::prometheus::TestPrometheus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use upgrade_gate::config;

/// The open-file limit the child runs under (soft and hard).
const FILE_LIMIT: u64 = 256;
const HEADER_TIMEOUT: Duration = Duration::from_secs(4);
const FAST: Duration = Duration::from_millis(200);

/// Whether the peer has closed `s` (or reset it); false while it is open and silent.
fn closed(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let closed = match s.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

/// Status of `GET path` on a new connection, asserting it came within [`FAST`].
fn answers_fast(gate: &GateProcess, path: &str) -> (u16, String) {
    let started = Instant::now();
    let answer = gate
        .request("GET", path)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let took = started.elapsed();
    assert!(took < FAST, "GET {path} took {took:?}");
    answer
}

#[test]
fn idle_connections_beyond_the_cap_leave_the_gate_answering() {
    let prom = TestPrometheus::start(
        &OpenMetrics::new()
            .gauge("up", r#"job="x""#, around(now()), |_| Some(1.0))
            .render(),
    );
    let gate = GateProcess::start(
        |listen| {
            format!(
                "prometheus: {{url: \"{}\", timeout: 2s}}\nevaluation: {{interval: 1s}}\nserver: {{listen: \"{listen}\", header_read_timeout: {}s}}\nphases: [{{name: p}}]\nsignals: [{{name: up, query: up, fail: \"< 1\"}}]\n",
                prom.url(),
                HEADER_TIMEOUT.as_secs()
            )
        },
        &["prlimit", &format!("--nofile={FILE_LIMIT}:{FILE_LIMIT}")],
    );
    let capped = gate
        .logged("HTTP connections capped")
        .unwrap_or_else(|| panic!("no cap logged:\n{}", gate.logs()));
    assert_eq!(capped["open_file_limit"], FILE_LIMIT, "{capped}");
    let cap = capped["max_connections"].as_u64().unwrap();
    assert!(
        cap > 16 && cap + 64 <= FILE_LIMIT,
        "the cap keeps a reserve below the file limit: {capped}"
    );

    // More silent connections than the cap (and than the file limit).
    let flood_started = Instant::now();
    let flood_wall = chrono::Utc::now();
    let idle: Vec<TcpStream> = (0..FILE_LIMIT + 44)
        .map(|_| TcpStream::connect(gate.addr).unwrap())
        .collect();

    for _ in 0..5 {
        assert_eq!(answers_fast(&gate, "/healthz").0, 200);
        let (status, body) = answers_fast(&gate, "/gate/p");
        assert_eq!(status, 200, "{body}");
    }
    // The cap made room by closing the longest idle ones; the rest wait for their deadline.
    let open = idle.iter().filter(|s| !closed(s)).count() as u64;
    assert!(
        flood_started.elapsed() < HEADER_TIMEOUT,
        "too slow to tell what the deadline closed"
    );
    assert!(
        open <= cap && open >= cap / 2,
        "{open} of the idle connections open, cap {cap}"
    );

    // The evaluation loop still has sockets for Prometheus: a fresh evaluation, every signal ok.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = answers_fast(&gate, "/signals");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let at: chrono::DateTime<chrono::Utc> =
            v["evaluated_at"].as_str().unwrap().parse().unwrap();
        if at > flood_wall {
            assert_eq!(v["signals"][0]["status"], "ok", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "no evaluation since the flood");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Nothing ever sent a byte: the header deadline closes every one.
    let deadline = flood_started + HEADER_TIMEOUT + Duration::from_secs(3);
    for s in &idle {
        while !closed(s) {
            assert!(
                Instant::now() < deadline,
                "an idle connection outlived the header timeout"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(answers_fast(&gate, "/healthz").0, 200);
}

fn gate_config(extra_server: &str, prometheus: &str) -> (tempfile::TempDir, config::Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            "prometheus: {{url: \"{prometheus}\", timeout: 3s}}\nevaluation: {{interval: 1s}}\nserver: {{enable_reload_endpoint: true, {extra_server}}}\nphases: [{{name: p}}]\nsignals: [{{name: s, query: \"vector(0)\", fail: \"> 1\"}}]\n"
        ),
    )
    .unwrap();
    let config = config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    (dir, config)
}

/// Reads until the server closes the connection; what it sent, and when it closed.
async fn until_closed(stream: &mut tokio::net::tcp::OwnedReadHalf) -> (String, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&got).into_owned(), Instant::now()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_at_the_header_timeout() {
    // Nothing listens there: evaluations fail fast, which does not matter for the socket layer.
    let (_dir, config) = gate_config(
        "header_read_timeout: 2s",
        &format!("http://127.0.0.1:{}", common::gate::free_port()),
    );
    let gate = TestGate::start(config).await;
    let timeout = Duration::from_secs(2);

    // A byte per second: the request line is not even half through when the deadline passes.
    let (mut rx, mut tx) = tokio::net::TcpStream::connect(gate.addr)
        .await
        .unwrap()
        .into_split();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for b in b"GET /healthz HTTP/1.1\r\nHost: gate\r\n\r\n" {
            if tx.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let (answer, closed_at) = until_closed(&mut rx).await;
    let took = closed_at - started;
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(
        took >= timeout - Duration::from_millis(100)
            && took < timeout + Duration::from_millis(1500),
        "cut off after {took:?}"
    );
    trickle.abort();

    // A keep-alive connection that asked once and then says nothing is closed at the deadline.
    let (mut rx, mut tx) = tokio::net::TcpStream::connect(gate.addr)
        .await
        .unwrap()
        .into_split();
    tx.write_all(b"GET /healthz HTTP/1.1\r\nHost: gate\r\n\r\n")
        .await
        .unwrap();
    let asked = Instant::now();
    let (answer, closed_at) = until_closed(&mut rx).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let idle = closed_at - asked;
    assert!(
        idle >= timeout - Duration::from_millis(100)
            && idle < timeout + Duration::from_millis(1500),
        "closed after {idle:?}"
    );
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_its_request_does_not_hold_the_shutdown() {
    // A request timeout far longer than the test waits: only the header deadline can end the
    // half-sent request while the server drains.
    let (_dir, config) = gate_config(
        "header_read_timeout: 1s, request_timeout: 60s",
        &format!("http://127.0.0.1:{}", common::gate::free_port()),
    );
    let gate = TestGate::start(config).await;
    let mut slow = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    slow.write_all(b"GET /heal").await.unwrap();
    // Connections are accepted in order: once a later one is answered, the slow one is open.
    assert_eq!(gate.get("/healthz").await.0, 200);
    let stopping = Instant::now();
    gate.stop().await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the slow connection is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_limited() {
    let (_dir, config) = gate_config(
        "max_body_bytes: 1024",
        &format!("http://127.0.0.1:{}", common::gate::free_port()),
    );
    let gate = TestGate::start(config).await;
    gate.ready().await;
    let client = reqwest::Client::new();
    let reload = format!("{}/-/reload", gate.base);

    let r = client
        .post(&reload)
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // A huge announced body is refused from its header alone, without waiting for the bytes.
    let mut s = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    s.write_all(b"POST /-/reload HTTP/1.1\r\nHost: gate\r\nContent-Length: 1000000000\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut head))
        .await
        .expect("answered at once")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");

    // Within the limit (the endpoint needs no body at all) the reload goes through.
    let r = client.post(&reload).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 200);
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_takes_too_long_is_a_408() {
    // Accepts connections and never answers: the first evaluation hangs for the query timeout,
    // and a reload waits for it to end.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", hang.local_addr().unwrap());
    let (asked, mut evaluating) = tokio::sync::mpsc::channel(64);
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
            let _ = asked.try_send(());
        }
    });
    let (_dir, config) = gate_config("request_timeout: 500ms", &url);
    let gate = TestGate::start(config).await;
    // The first evaluation has reached the hanging Prometheus: the reload must wait for it.
    evaluating.recv().await.unwrap();
    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("{}/-/reload", gate.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 408);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "{took:?}");
    gate.stop().await;
    holder.abort();
}

#[test]
fn limits_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        "server: {header_read_timeout: 0s, request_timeout: soon, max_connections: -1, max_body_bytes: -5, tls: {cert_file: /nonexistent/cert.pem}, auth: {protect_metrics: true}}\nphases: [{name: p}]\nsignals: [{name: s, query: up, fail: \"> 1\"}]\n",
    )
    .unwrap();
    let err = config::load(Some(&path)).unwrap_err().to_string();
    for expected in [
        "key `server.header_read_timeout`: must be more than 0",
        "key `server.request_timeout`: \"soon\" is not a duration",
        "key `server.max_connections`: -1 must be at least 1, or 0 for the default",
        "key `server.max_body_bytes`: -5 must not be negative",
        "key `server.tls.key_file`: missing",
        "key `server.auth.bearer_token_file`: missing",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
}
