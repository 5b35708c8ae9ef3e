//! `upgrade-gate report` in fleet mode over a real Prometheus backfilled with three clusters of
//! the simulator (`c2` playing the istio incident, as `simulate --clusters 3 --incident
//! c2=istio-5xx-spike --openmetrics` writes them): one cluster's page, a wave's, the whole
//! fleet's heat map and waves, in HTML (opened offline by a real browser) and Markdown.

mod common;

use common::browser;
use common::data::{default_pack_config, now, rfc3339};
use common::process::gate_cli as run;
use common::prometheus::TestPrometheus;
use upgrade_gate::simulate::fleet::Fleet;
use upgrade_gate::simulate::scenarios::{Scenario, Window};

const STEP: i64 = 30;
/// The istio phase's column in the heat map.
const ISTIO: usize = 2;

struct Setup {
    _prom: TestPrometheus,
    dir: tempfile::TempDir,
    config: String,
    from: String,
    to: String,
}

/// Three clusters in two waves, canary (c1, c2) then prod (c3, 10m soak), and a third wave of a
/// cluster that sends nothing (c4); c2's istio incident runs through the window's middle: an
/// hour of it that started 100 minutes ago.
fn setup() -> Setup {
    let t = now() / STEP * STEP;
    let start = t - 100 * 60;
    let window = Window::new(start, start + 3600);
    let fleet = Fleet::new(
        "cluster",
        3,
        Scenario::Healthy,
        &[("c2".to_string(), Scenario::Istio5xxSpike)],
    )
    .unwrap();
    let prom = TestPrometheus::start(&fleet.openmetrics(window, start - 3600, t, STEP));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleet.yaml");
    let fleet = r#"fleet:
  waves:
    - {name: canary, clusters: [c1, c2]}
    - {name: prod, clusters: [c3], soak: 10m}
    - {name: late, clusters: [c4]}
"#;
    std::fs::write(&config, default_pack_config(prom.url(), start) + fleet).unwrap();
    Setup {
        _prom: prom,
        config: config.display().to_string(),
        dir,
        from: rfc3339(start - 20 * 60),
        to: rfc3339(t),
    }
}

fn report(s: &Setup, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "report", "--config", &s.config, "--from", &s.from, "--to", &s.to,
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    (code, out, err)
}

/// The heat map's Markdown rows: cluster -> its cells.
fn heat_rows(md: &str) -> Vec<(String, Vec<String>)> {
    let table = md
        .split("### Clusters × phases")
        .nth(1)
        .expect("a heat map");
    let table = table.split("### Waves").next().unwrap();
    table
        .lines()
        .filter(|l| l.starts_with("| c") && !l.starts_with("| cluster "))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect();
            (cells[0].clone(), cells[2..].to_vec())
        })
        .collect()
}

#[test]
fn one_cluster_a_wave_and_the_fleet() {
    let s = setup();
    // c2's page: the incident, its offenders named with their cluster.
    let (code, md, err) = report(&s, &["--cluster", "c2", "--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    assert!(md.contains("cluster c2 (wave canary)"), "{md}");
    let incidents = md.split("### Incidents").nth(1).unwrap();
    assert!(incidents.contains("istio_5xx_ratio"), "{md}");
    assert!(incidents.contains("cluster=\"c2\""), "{md}");
    assert!(
        !md.contains("### Clusters × phases"),
        "one cluster: today's page"
    );
    // c1's: healthy throughout, nothing blamed on istio.
    let (code, md, err) = report(&s, &["--cluster", "c1", "--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    assert!(!md.contains("istio_5xx_ratio"), "{md}");

    // The wave: combined, so blocked by c2; its heat map has its two clusters only.
    let (code, md, err) = report(&s, &["--wave", "canary", "--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    assert!(md.contains("wave canary: c1, c2"), "{md}");
    let rows = heat_rows(&md);
    let names: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, ["c1", "c2"], "{md}");
    // Columns: precheck, karpenter, istio, addons, control-plane, nodes.
    assert!(
        rows[1].1[ISTIO].starts_with("no-go (not go "),
        "c2 istio: {md}"
    );
    assert_eq!(rows[0].1[ISTIO], "go (always go)", "c1 istio: {md}");
    assert!(md
        .split("### Incidents")
        .nth(1)
        .unwrap()
        .contains("istio_5xx_ratio"));

    // The whole fleet: every cluster, and the waves.
    let (code, md, err) = report(&s, &["--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    assert!(md.contains("fleet: 4 clusters in 3 waves"), "{md}");
    let rows = heat_rows(&md);
    assert_eq!(rows.len(), 4, "{md}");
    // c4 has no presence series: unknown throughout, never no-go for its missing signals.
    assert!(
        rows[3].1.iter().all(|c| c.starts_with("unknown (not go ")),
        "{md}"
    );
    assert!(rows[1].1[ISTIO].starts_with("no-go (not go "), "{md}");
    assert_eq!(rows[2].1[ISTIO], "go (always go)", "{md}");
    let waves = md.split("### Waves").nth(1).unwrap();
    assert!(waves.contains("| canary | c1, c2 | 0s |"), "{waves}");
    assert!(
        waves.lines().any(|l| l.starts_with("| prod | c3 | 10m |")),
        "{waves}"
    );

    // Usage errors: an unlisted cluster or wave names the known ones.
    let (code, _, err) = report(&s, &["--cluster", "c9"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown cluster \"c9\"; known clusters: c1, c2, c3, c4"),
        "{err}"
    );
    let (code, _, err) = report(&s, &["--wave", "staging"]);
    assert_eq!(code, 2);
    assert!(err.contains("known waves: canary, prod, late"), "{err}");
}

#[test]
fn without_a_fleet_section_cluster_and_wave_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gate.yaml");
    std::fs::write(
        &config,
        "prometheus: {url: \"http://127.0.0.1:9\"}\nphases: [{name: p}]\nsignals: [{name: s, query: up, fail: \"> 1\"}]\n",
    )
    .unwrap();
    for option in ["--cluster", "--wave"] {
        let (code, _, err) = run(&[
            "report",
            "--config",
            config.to_str().unwrap(),
            "--from",
            "now-1h",
            "--to",
            "now",
            option,
            "x",
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("needs a `fleet` section"), "{err}");
    }
}

#[test]
fn a_browser_offline_finds_the_heat_map() {
    let s = setup();
    let page = s.dir.path().join("fleet.html");
    let (code, _, err) = report(&s, &["--output", page.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let opened = browser::open(&page);
    assert!(opened.console.is_empty(), "{:?}", opened.console);
    for fetch in ["<script", "src=", "<link", "url(", "@import"] {
        assert!(!opened.dom.contains(fetch), "the page would fetch: {fetch}");
    }
    let heat = opened
        .dom
        .split("<table class=\"heatmap\">")
        .nth(1)
        .expect("the heat map");
    let heat = heat.split("</table>").next().unwrap();
    // c2's istio cell says, in words, that it was not go.
    let c2 = heat.split("<tr><th>c2</th>").nth(1).unwrap();
    let c2 = c2.split("</tr>").next().unwrap();
    assert!(c2.contains("title=\"c2 istio\">NO-GO"), "{c2}");
    assert!(c2.contains("not go"), "{c2}");
    assert!(opened.dom.contains("<table class=\"waves\">"));
    assert!(opened.dom.contains("id=\"signal-istio_5xx_ratio\""));

    let png = s.dir.path().join("fleet.png");
    browser::screenshot(&page, &png, 1100, 1800);
    if let Ok(keep) = std::env::var("REPORT_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_shows_the_fleet_page_and_builds_a_clusters_report_on_demand() {
    let s = setup();
    let yaml = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("evaluation: {interval: 30s}", "evaluation: {interval: 2s}");
    let path = s.dir.path().join("serve.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = upgrade_gate::config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    let gate = common::gate::TestGate::start(config).await;
    gate.ready().await;
    let base = gate.base.clone();

    // `/` is the whole fleet's page, built from the fleet's own evaluations.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let html = loop {
        let (status, body) = get(&format!("{base}/")).await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 503, "{body}");
        assert!(std::time::Instant::now() < deadline, "no page");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        html.contains("fleet: 4 clusters in 3 waves"),
        "{html:.2000}"
    );
    assert!(html.contains("<table class=\"heatmap\">"));
    assert!(html.contains("<table class=\"waves\">"));
    assert!(
        html.contains("title=\"c4 istio\">UNKNOWN"),
        "c4 sends nothing"
    );
    let live = s.dir.path().join("live.html");
    std::fs::write(&live, &html).unwrap();
    let opened = browser::open(&live);
    assert!(opened.console.is_empty(), "{:?}", opened.console);

    // A past window, for one cluster, on demand; an unlisted one is 404 naming the known ones.
    let window = format!(
        "from={}&to={}&step=30s",
        common::prometheus::urlencode(&s.from),
        common::prometheus::urlencode(&s.to)
    );
    let (status, page) = get(&format!("{base}/report?{window}&cluster=c2")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("cluster c2 (wave canary)"));
    assert!(page.contains("id=\"signal-istio_5xx_ratio\""));
    let (status, page) = get(&format!("{base}/report?{window}&cluster=c1")).await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("id=\"signal-istio_5xx_ratio\""));
    let (status, body) = get(&format!("{base}/report?{window}&wave=moon")).await;
    assert_eq!(status, 404);
    assert!(body.contains("known: canary, prod, late"), "{body}");
    gate.stop().await;
}

#[test]
fn a_store_that_fails_makes_its_clusters_unknown_and_no_other() {
    let s = setup();
    // c3 read from a store where nothing listens.
    let yaml = std::fs::read_to_string(&s.config).unwrap().replace(
        "    - {name: late, clusters: [c4]}\n",
        "    - {name: late, clusters: [c4]}\n  backends:\n    - {name: down, prometheus: {url: \"http://127.0.0.1:9\"}, clusters: [c3]}\n",
    );
    assert!(yaml.contains("backends"), "{yaml}");
    let path = s.dir.path().join("down.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (code, md, err) = run(&[
        "report",
        "--config",
        path.to_str().unwrap(),
        "--from",
        &s.from,
        "--to",
        &s.to,
        "--format",
        "markdown",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(md.contains("and fleet.backends down"), "{md}");
    let rows = heat_rows(&md);
    assert_eq!(rows[2].0, "c3");
    assert!(
        rows[2].1.iter().all(|c| c.starts_with("unknown (not go ")),
        "{md}"
    );
    assert!(rows[1].1[ISTIO].starts_with("no-go (not go "), "{md}");
    assert_eq!(rows[0].1[ISTIO], "go (always go)", "{md}");
}
