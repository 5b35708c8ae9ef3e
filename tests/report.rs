//! `upgrade-gate report` over a real Prometheus backfilled with the simulator's istio incident:
//! its incidents are `replay`'s no-go runs, and a real browser, offline, finds every plot and the
//! incidents in the page, without a console error.

mod common;

use std::collections::BTreeSet;

use common::browser;
use common::data::{default_pack_config, now, rfc3339};
use common::process::gate_cli as run;
use common::prometheus::{urlencode, TestPrometheus};
use serde_json::Value;
use upgrade_gate::simulate::scenarios::{openmetrics_window, Scenario, Window};

const STEP: i64 = 30;

/// The default pack and phases against a Prometheus holding an hour of the istio 5xx scenario
/// that started 100 minutes ago (and the hour before it), baselines pinned at its start.
struct Setup {
    _prom: TestPrometheus,
    dir: tempfile::TempDir,
    config: String,
    from: String,
    to: String,
    /// The configured phases, `all` aside.
    phases: Vec<String>,
}

fn setup() -> Setup {
    let t = now() / STEP * STEP;
    let start = t - 100 * 60;
    let window = Window::new(start, start + 3600);
    let prom = TestPrometheus::start(&openmetrics_window(
        Scenario::Istio5xxSpike,
        window,
        start - 3600,
        t,
        STEP,
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gate.yaml");
    std::fs::write(&config, default_pack_config(prom.url(), start)).unwrap();
    let phases = upgrade_gate::config::load(Some(&config))
        .unwrap()
        .pack
        .phases
        .into_iter()
        .map(|p| p.name)
        .collect();
    Setup {
        _prom: prom,
        phases,
        config: config.display().to_string(),
        dir,
        from: rfc3339(start - 20 * 60),
        to: rfc3339(t),
    }
}

/// `replay`'s rows of `phase` over the set-up window.
fn replay(s: &Setup, phase: &str) -> Vec<Value> {
    let (code, out, err) = run(&[
        "replay", "--config", &s.config, "--phase", phase, "--from", &s.from, "--to", &s.to,
        "--output", "json",
    ]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The runs of no-go rows: (phase, first no-go step, first go step after it or one step past
/// the end), times as the report writes them.
fn no_go_runs(phase: &str, rows: &[Value]) -> Vec<(String, String, String)> {
    let time = |r: &Value| {
        let t = chrono::DateTime::parse_from_rfc3339(r["evaluated_at"].as_str().unwrap()).unwrap();
        t.timestamp()
    };
    let utc = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let mut runs = Vec::new();
    let mut open: Option<i64> = None;
    for r in rows {
        match (r["decision"].as_str().unwrap(), open) {
            ("no_go", None) => open = Some(time(r)),
            ("go", Some(start)) => {
                runs.push((phase.to_string(), utc(start), utc(time(r))));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        let end = time(rows.last().unwrap()) + STEP;
        runs.push((
            phase.to_string(),
            utc(start),
            format!("{} (still not go)", utc(end)),
        ));
    }
    runs
}

/// The Markdown incidents table as (phase, start, end) rows, one per phase of a shared row.
fn markdown_incidents(md: &str) -> Vec<(String, String, String)> {
    let table = md
        .split("### Incidents")
        .nth(1)
        .expect("an incidents section");
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| phases") && !l.starts_with("| ---"))
        .flat_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            let (start, end) = (cells[1].to_string(), cells[2].to_string());
            cells[0]
                .split(", ")
                .map(move |p| (p.to_string(), start.clone(), end.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_incidents_are_replays_no_go_runs() {
    let s = setup();
    let (code, md, err) = run(&[
        "report", "--config", &s.config, "--from", &s.from, "--to", &s.to, "--format", "markdown",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut expected: Vec<_> = s
        .phases
        .iter()
        .flat_map(|p| no_go_runs(p, &replay(&s, p)))
        .collect();
    let mut found = markdown_incidents(&md);
    expected.sort();
    found.sort();
    assert!(
        expected.iter().any(|(p, _, _)| p == "istio"),
        "the scenario blocks istio: {expected:?}"
    );
    assert_eq!(found, expected, "{md}");
    assert!(md.contains("istio_5xx_ratio"), "{md}");
    assert!(
        md.contains("Roll back the canary"),
        "the runbook text: {md}"
    );

    // One phase alone: only its incidents.
    let (code, md, _) = run(&[
        "report", "--config", &s.config, "--from", &s.from, "--to", &s.to, "--format", "markdown",
        "--phase", "istio",
    ]);
    assert_eq!(code, 0);
    let only: BTreeSet<String> = markdown_incidents(&md).into_iter().map(|r| r.0).collect();
    assert_eq!(only, BTreeSet::from(["istio".to_string()]));
}

#[test]
fn a_browser_offline_finds_every_plot_and_the_incidents() {
    let s = setup();
    let page = s.dir.path().join("report.html");
    let (code, _, err) = run(&[
        "report",
        "--config",
        &s.config,
        "--from",
        &s.from,
        "--to",
        &s.to,
        "--output",
        page.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let opened = browser::open(&page);
    assert!(opened.console.is_empty(), "{:?}", opened.console);
    for fetch in ["<script", "src=", "<link", "url(", "@import"] {
        assert!(!opened.dom.contains(fetch), "the page would fetch: {fetch}");
    }
    // Every signal the replay blamed at some step was not ok: one figure, one plot each.
    let blamed: BTreeSet<String> = s
        .phases
        .iter()
        .flat_map(|p| replay(&s, p))
        .flat_map(|r| {
            r["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|reason| {
                    let name = reason.as_str()?.split("signal \"").nth(1)?;
                    Some(name.split('"').next()?.to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(blamed.contains("istio_5xx_ratio"), "{blamed:?}");
    let figures: Vec<&str> = opened
        .dom
        .split("<figure class=\"signal\"")
        .skip(1)
        .collect();
    assert_eq!(figures.len(), blamed.len(), "{blamed:?}");
    for (figure, name) in figures.iter().zip(&blamed) {
        let figure = figure.split("</figure>").next().unwrap();
        assert!(figure.contains("<svg"), "a plot in the figure of {name}");
        assert!(
            blamed
                .iter()
                .any(|b| figure.contains(&format!("id=\"signal-{b}\""))),
            "{figure}"
        );
    }
    let incidents = opened
        .dom
        .split("<table class=\"incidents\">")
        .nth(1)
        .expect("the incidents table");
    assert!(incidents.contains("istio_5xx_ratio"));
    assert!(incidents.contains("Roll back the canary"));
    // The rows as the browser has them: (phases, start, end) are replay's no-go runs.
    let incidents = incidents.split("</table>").next().unwrap();
    let cell = |row: &str, i: usize| {
        let text = row.split("<td>").nth(i + 1).unwrap_or_default();
        text.split("</td>").next().unwrap_or_default().to_string()
    };
    let mut shown: Vec<(String, String, String)> = incidents
        .split("<tr>")
        .filter(|row| row.starts_with("<td>"))
        .flat_map(|row| {
            let (start, end) = (cell(row, 1), cell(row, 2));
            cell(row, 0)
                .split(", ")
                .map(|p| (p.to_string(), start.clone(), end.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut expected: Vec<_> = s
        .phases
        .iter()
        .flat_map(|p| no_go_runs(p, &replay(&s, p)))
        .collect();
    shown.sort();
    expected.sort();
    assert!(!shown.is_empty());
    assert_eq!(shown, expected);
    // A timeline per phase.
    assert_eq!(
        opened.dom.matches("<section class=\"phase\"").count(),
        s.phases.len()
    );

    let png = s.dir.path().join("report.png");
    browser::screenshot(&page, &png, 1100, 2400);
    if let Ok(keep) = std::env::var("REPORT_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}

/// `serve` with the set-up Prometheus, evaluating every 2 s, behind a bearer token.
async fn serve(s: &Setup) -> (common::gate::TestGate, String) {
    let token = "report-page-t0ken";
    let token_file = s.dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let yaml = std::fs::read_to_string(&s.config).unwrap().replace(
        "evaluation: {interval: 30s}",
        &format!(
            "evaluation: {{interval: 2s}}\nserver: {{auth: {{bearer_token_file: \"{}\"}}}}",
            token_file.display()
        ),
    );
    let path = s.dir.path().join("serve.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = upgrade_gate::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    let gate = common::gate::TestGate::start(config).await;
    gate.ready().await;
    (gate, format!("Bearer {token}"))
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

/// The `evaluated_at` of the latest `/gate` answer.
async fn evaluated_at(base: &str, auth: &str) -> String {
    let gate: Value = get(&format!("{base}/gate"), &[("authorization", auth)])
        .await
        .json()
        .await
        .unwrap();
    gate["evaluated_at"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_shows_the_page_from_memory_with_an_etag_and_builds_past_windows_on_demand() {
    let s = setup();
    let (gate, auth) = serve(&s).await;
    let base = gate.base.clone();
    assert_eq!(get(&format!("{base}/"), &[]).await.status(), 401);
    assert_eq!(get(&format!("{base}/report"), &[]).await.status(), 401);

    // The page is built in the background once the first evaluation is in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let page = loop {
        let r = get(&format!("{base}/"), &[("authorization", &auth)]).await;
        if r.status() == 200 {
            break r;
        }
        assert_eq!(r.status(), 503);
        assert!(std::time::Instant::now() < deadline, "no page");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let etag = page.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(page.headers()["cache-control"], "private, no-cache");
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert_eq!(
        html.matches("<section class=\"phase\"").count(),
        s.phases.len()
    );
    let not_modified = get(
        &format!("{base}/"),
        &[("authorization", &auth), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(not_modified.status(), 304);

    // More evaluations within the minute do not rebuild it.
    let first = evaluated_at(&base, &auth).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while evaluated_at(&base, &auth).await == first {
        assert!(std::time::Instant::now() < deadline, "no new evaluation");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let again = get(&format!("{base}/"), &[("authorization", &auth)]).await;
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);

    // Offline in a browser: the live page, and a past window built on demand.
    let live = s.dir.path().join("live.html");
    std::fs::write(&live, &html).unwrap();
    let opened = browser::open(&live);
    assert!(opened.console.is_empty(), "{:?}", opened.console);
    let past = get(
        &format!(
            "{base}/report?step=30s&from={}&to={}",
            urlencode(&s.from),
            urlencode(&s.to)
        ),
        &[("authorization", &auth)],
    )
    .await;
    let status = past.status();
    let past_html = past.text().await.unwrap();
    assert_eq!(status, 200, "{past_html}");
    let past_page = s.dir.path().join("past.html");
    std::fs::write(&past_page, past_html).unwrap();
    let opened = browser::open(&past_page);
    assert!(opened.console.is_empty(), "{:?}", opened.console);
    assert!(opened.dom.contains("id=\"signal-istio_5xx_ratio\""));
    assert!(opened.dom.contains("<table class=\"incidents\">"));

    // Longer than report.max_window (24h by default): refused before Prometheus is asked.
    let too_long = get(
        &format!(
            "{base}/report?from=1800000000&to={}",
            1_800_000_000 + 25 * 3600
        ),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(too_long.status(), 400);
    let error: Value = too_long.json().await.unwrap();
    assert!(error["error"]
        .as_str()
        .unwrap()
        .contains("report.max_window"));
    gate.stop().await;
}

/// A Prometheus that accepts, records each request line, and never answers.
async fn silent_prometheus() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                record.lock().unwrap().push(text);
                // Hold the connection open, unanswered.
                let _ = socket.read(&mut buf).await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_report_at_a_time_on_demand() {
    let (url, seen) = silent_prometheus().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            "prometheus: {{url: \"{url}\", timeout: 10s}}\nevaluation: {{interval: 1s}}\nphases: [{{name: p}}]\nsignals: [{{name: s, query: up, fail: \"> 1\"}}]\n"
        ),
    )
    .unwrap();
    let config = upgrade_gate::config::load(Some(&path)).unwrap();
    let gate = common::gate::TestGate::start(config).await;
    let base = gate.base.clone();
    let first = tokio::spawn({
        let base = base.clone();
        async move {
            get(&format!("{base}/report?from=1699990000&to=1700000000"), &[])
                .await
                .status()
        }
    });
    // The first report is waiting on Prometheus once its range query (ending at `to`) arrived.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.contains("end=1700000000"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the report never asked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let second = get(&format!("{base}/report?from=1699990000&to=1700000000"), &[]).await;
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "5");
    // A Prometheus that never answers is a gateway error, not a page.
    assert_eq!(first.await.unwrap(), 502);
    gate.stop().await;
}
