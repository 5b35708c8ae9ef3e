//! The gate exposed beyond the cluster: TLS with a private CA made by openssl (ok with the CA,
//! refused without it, a rotated certificate picked up on reload, a bad one refused), and the
//! bearer token (401 with no detail, the probes open, `/metrics` open unless protected, a rotated
//! token file followed, the token never logged).

mod common;

use std::path::Path;

use common::gate::{free_port, GateProcess, TestGate};
use common::tls::{ca, signed, LOOPBACK_SERVER};
use upgrade_gate::config;

/// A gate config whose Prometheus is nowhere (evaluations fail fast; the socket layer is what
/// these tests look at), with `server` extras.
fn write_config(dir: &Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            "prometheus: {{url: \"http://127.0.0.1:{}\", timeout: 1s}}\nevaluation: {{interval: 1s}}\nserver:\n  enable_reload_endpoint: true\n{server}\nphases: [{{name: p}}]\nsignals: [{{name: s, query: \"vector(0)\", fail: \"> 1\"}}]\n",
            free_port()
        ),
    )
    .unwrap();
    path
}

/// A client that trusts only the CA `<name>.pem` in `dir`, with no pooled connections so that
/// every request makes a new handshake.
fn trusting(dir: &Path, name: &str) -> reqwest::Client {
    let pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn status(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    client
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

async fn reload(client: &reqwest::Client, base: &str) -> (u16, String) {
    let r = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn install(dir: &Path, who: &str) {
    std::fs::copy(dir.join(format!("{who}.pem")), dir.join("cert.pem")).unwrap();
    std::fs::copy(dir.join(format!("{who}.key")), dir.join("key.pem")).unwrap();
}

/// Two private CAs, `ca1` and `ca2`, each with a certificate for 127.0.0.1 (`one`, `two`); `one`
/// is installed as `cert.pem` and `key.pem`, where the gate's config points.
fn two_authorities() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (authority, leaf) in [("ca1", "one"), ("ca2", "two")] {
        ca(dir.path(), authority);
        signed(dir.path(), authority, leaf, LOOPBACK_SERVER);
    }
    install(dir.path(), "one");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_and_a_rotated_certificate() {
    let dir = two_authorities();
    let d = dir.path();
    let path = write_config(
        d,
        &format!(
            "  tls: {{cert_file: \"{}\", key_file: \"{}\"}}",
            d.join("cert.pem").display(),
            d.join("key.pem").display()
        ),
    );
    let gate = TestGate::start(config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"))).await;
    let healthz = format!("{}/healthz", gate.base);
    assert!(gate.base.starts_with("https://"), "{}", gate.base);

    assert_eq!(status(&trusting(d, "ca1"), &healthz).await, Ok(200));
    // Without the CA the client refuses the server; plain HTTP gets no answer at all.
    let untrusted = status(&reqwest::Client::new(), &healthz).await.unwrap_err();
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
    let plain = status(
        &reqwest::Client::new(),
        &format!("http://{}/healthz", gate.addr),
    )
    .await;
    assert!(plain.is_err(), "{plain:?}");

    // cert-manager rotates the files (here to a certificate of another CA); a reload picks it up.
    install(d, "two");
    assert_eq!(reload(&trusting(d, "ca1"), &gate.base).await.0, 200);
    assert_eq!(status(&trusting(d, "ca2"), &healthz).await, Ok(200));
    let old = status(&trusting(d, "ca1"), &healthz).await.unwrap_err();
    assert!(old.contains("UnknownIssuer"), "{old}");

    // A broken or mismatched new pair is refused, and the running certificate stays.
    std::fs::write(d.join("cert.pem"), "not a certificate\n").unwrap();
    let (code, body) = reload(&trusting(d, "ca2"), &gate.base).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("key `server.tls.cert_file`") && body.contains("holds no CERTIFICATE"),
        "{body}"
    );
    std::fs::copy(d.join("two.pem"), d.join("cert.pem")).unwrap();
    std::fs::copy(d.join("one.key"), d.join("key.pem")).unwrap();
    let (code, body) = reload(&trusting(d, "ca2"), &gate.base).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("does not fit the certificate"), "{body}");
    assert_eq!(status(&trusting(d, "ca2"), &healthz).await, Ok(200));
    gate.stop().await;
}

/// `Authorization: Bearer <token>` on every request when `token` is set.
async fn ask(base: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = match method {
        "POST" => client.post(format!("{base}{path}")),
        _ => client.get(format!("{base}{path}")),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    if status == 401 {
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    (status, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_guards_all_but_the_probes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = d.join("token");
    std::fs::write(&token, "t0k3n-one\n").unwrap();
    let auth = |protect_metrics: bool| {
        format!(
            "  auth: {{bearer_token_file: \"{}\", protect_metrics: {protect_metrics}}}",
            token.display()
        )
    };
    let path = write_config(d, &auth(false));
    let gate = TestGate::start(config::load(Some(&path)).unwrap()).await;
    gate.ready().await;
    let base = &gate.base;

    for (method, path) in [
        ("GET", "/gate"),
        ("GET", "/gate/p"),
        ("GET", "/signals"),
        ("POST", "/-/reload"),
        ("GET", "/no-such-path"),
    ] {
        for wrong in [None, Some("t0k3n-on"), Some("t0k3n-one-and-more"), Some("")] {
            let (code, body) = ask(base, method, path, wrong).await;
            assert_eq!(code, 401, "{method} {path} with {wrong:?}");
            assert_eq!(body, "", "a refusal says nothing");
        }
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(ask(base, "GET", path, None).await.0, 200, "{path} is open");
    }
    let right = Some("t0k3n-one");
    assert_eq!(ask(base, "GET", "/signals", right).await.0, 200);
    let (code, body) = ask(base, "GET", "/gate/p", right).await;
    // Prometheus is unreachable: unknown, but an answer, not a refusal.
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"decision\":\"unknown\""), "{body}");

    // The file is rotated: the new token works at once, the old one no more.
    std::fs::write(&token, "t0k3n-two\n").unwrap();
    assert_eq!(ask(base, "GET", "/signals", right).await.0, 401);
    assert_eq!(ask(base, "GET", "/signals", Some("t0k3n-two")).await.0, 200);

    // protect_metrics, switched on by a reload: /metrics needs the token, the probes still not.
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace(&auth(false), &auth(true)),
    )
    .unwrap();
    let (code, body) = ask(base, "POST", "/-/reload", Some("t0k3n-two")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(ask(base, "GET", "/metrics", None).await.0, 401);
    assert_eq!(ask(base, "GET", "/metrics", Some("t0k3n-two")).await.0, 200);
    assert_eq!(ask(base, "GET", "/healthz", None).await.0, 200);
    assert_eq!(ask(base, "GET", "/readyz", None).await.0, 200);
    gate.stop().await;
}

#[test]
fn the_token_never_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first-SECRET-token\n").unwrap();
    let gate = GateProcess::start(
        |listen| {
            format!(
                "prometheus: {{url: \"http://127.0.0.1:{}\", timeout: 1s}}\nevaluation: {{interval: 1s}}\nserver: {{listen: \"{listen}\", auth: {{bearer_token_file: \"{}\"}}}}\nphases: [{{name: p}}]\nsignals: [{{name: s, query: \"vector(0)\", fail: \"> 1\"}}]\n",
                free_port(),
                token.display()
            )
        },
        &[],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = gate.base.clone();
    let get = |t: &str| runtime.block_on(ask(&base, "GET", "/signals", Some(t))).0;
    assert_eq!(get("first-SECRET-token"), 200);
    assert_eq!(get("guessed-SECRET-token"), 401);
    std::fs::write(&token, "second-SECRET-token\n").unwrap();
    assert_eq!(get("second-SECRET-token"), 200);
    gate.hangup();
    // A half-written file: the last token stays in force, and the error names the file only.
    std::fs::write(&token, "").unwrap();
    assert_eq!(get("second-SECRET-token"), 200);
    let failed = gate
        .logged("cannot read server.auth.bearer_token_file; the last value read stays in force")
        .unwrap_or_else(|| panic!("{}", gate.logs()));
    assert_eq!(failed["file"], token.display().to_string());
    assert_eq!(failed["error"], "the file is empty");
    let logs = gate.logs();
    assert!(
        logs.contains("server.auth.bearer_token_file re-read"),
        "{logs}"
    );
    assert!(!logs.contains("SECRET"), "{logs}");
}

#[test]
fn sighup_rotates_the_certificate_of_a_running_gate() {
    let dir = two_authorities();
    let d = dir.path();
    let gate = GateProcess::start(
        |listen| {
            format!(
                "prometheus: {{url: \"http://127.0.0.1:{}\", timeout: 1s}}\nevaluation: {{interval: 1s}}\nserver: {{listen: \"{listen}\", tls: {{cert_file: \"{}\", key_file: \"{}\"}}}}\nphases: [{{name: p}}]\nsignals: [{{name: s, query: \"vector(0)\", fail: \"> 1\"}}]\n",
                free_port(),
                d.join("cert.pem").display(),
                d.join("key.pem").display()
            )
        },
        &[],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let healthz = format!("https://{}/healthz", gate.addr);
    let check = |ca: &str| runtime.block_on(status(&trusting(d, ca), &healthz));
    assert_eq!(check("ca1"), Ok(200));

    install(d, "two");
    gate.hangup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while check("ca2") != Ok(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate never served:\n{}",
            gate.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(check("ca1").unwrap_err().contains("UnknownIssuer"));
    let reloaded = gate.logged("TLS certificate reloaded").unwrap();
    assert_eq!(
        reloaded["cert_file"],
        d.join("cert.pem").display().to_string()
    );
}
