//! The gate as Flagger, Argo Rollouts and Kargo ask it (issue 19): their exact requests against a
//! real gate judging a real Prometheus, and the examples in deploy/integrations/ validated against
//! the tools' own CRD schemas (`../shared/crds/`, beside the repository) with check-jsonschema,
//! their conditions evaluated against the gate's real answers.
//!
//! Python tools come from the venv `scripts/ensure-python-tools.sh` makes (`target/py`, or
//! `DEPLOY_TEST_VENV`): check-jsonschema, and PyYAML to read YAML (no YAML crate is a dependency).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::data::{around, now, OpenMetrics};
use common::gate::{free_port, TestGate};
use common::prometheus::{hanging_server, TestPrometheus};
use serde_json::Value;
use upgrade_gate::config;

const TOKEN: &str = "integrations-t0ken";

/// Flagger's webhook body as its client marshals `CanaryWebhookPayload`, with the webhook's
/// metadata (a user key beside `phase`).
fn flagger_body(metadata: &str) -> String {
    format!(
        r#"{{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"6c8d5b7f9","metadata":{metadata}}}"#
    )
}

/// A gate with two phases, `istio` (go) and `blocked` (no-go), behind a bearer token, asking
/// the Prometheus at `url` with `timeout`.
async fn gate(dir: &Path, url: &str, timeout: &str) -> TestGate {
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let path = dir.join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            r#"prometheus: {{url: "{url}", timeout: {timeout}}}
evaluation: {{interval: 1s}}
server: {{auth: {{bearer_token_file: "{}"}}}}
phases: [{{name: istio}}, {{name: blocked}}]
signals:
  - {{name: always_ok, query: "vector(0)", fail: "> 0", phases: [istio]}}
  - {{name: always_failing, query: "vector(1)", fail: "> 0", critical: true, phases: [blocked]}}
"#,
            token.display()
        ),
    )
    .unwrap();
    TestGate::start(config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"))).await
}

/// A Prometheus, the gate's folder and the gate, ready; the first two live as long as the gate.
async fn started() -> (TestPrometheus, tempfile::TempDir, TestGate) {
    let prom = prometheus();
    let dir = tempfile::tempdir().unwrap();
    let gate = gate(dir.path(), prom.url(), "2s").await;
    gate.ready().await;
    (prom, dir, gate)
}

fn prometheus() -> TestPrometheus {
    let t = now();
    TestPrometheus::start(
        &OpenMetrics::new()
            .gauge("up", r#"job="x""#, around(t), |_| Some(1.0))
            .render(),
    )
}

/// `POST path` as Flagger's webhook client sends it: JSON body, `Content-Type: application/json`.
async fn flagger(gate: &TestGate, path: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", gate.base))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `GET url` as Argo's `web` provider sends it, with the template's headers.
async fn argo(url: &str, headers: &[(String, String)]) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    for (key, value) in headers {
        request = request.header(key, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagger_webhooks_get_200_on_go_403_on_no_go_and_400_for_a_bad_body() {
    let (_prom, _dir, gate) = started().await;
    let token = Some(TOKEN);

    let go = flagger_body(r#"{"phase":"istio","owner":"platform"}"#);
    let (status, body) = flagger(&gate, "/gate", &go, token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "go", "{body}");
    assert_eq!(body["phase"], "istio", "{body}");
    let (status, body) = flagger(&gate, "/gate/istio", &flagger_body("{}"), token).await;
    assert_eq!((status, &body["decision"]), (200, &"go".into()), "{body}");

    // No-go is a 403 (Flagger retries a 5xx until its timeout), with the same JSON as GET.
    let (status, body) = flagger(&gate, "/gate/blocked", &flagger_body("{}"), token).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["decision"], "no_go", "{body}");
    // Without a phase in the metadata, all phases are judged, as `GET /gate` does.
    let (status, body) = flagger(&gate, "/gate", &flagger_body(r#"{"x":"y"}"#), token).await;
    assert_eq!((status, &body["phase"]), (403, &"all".into()), "{body}");

    for (bad, names) in [
        ("{not json", "key must be a string"),
        (
            r#"{"namespace":"test","phase":"Progressing"}"#,
            "missing field `name`",
        ),
        (
            r#"{"name":"podinfo","namespace":"test","phase":"Progressing","metadata":{"phase":["istio"]}}"#,
            "invalid type: sequence, expected a string",
        ),
    ] {
        let (status, body) = flagger(&gate, "/gate/istio", bad, token).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(names), "{bad}: {body}");
    }

    // Within the body limit (`server.max_body_bytes`, 4096 by default): 413 beyond it.
    let big = flagger_body(&format!(
        r#"{{"phase":"istio","note":"{}"}}"#,
        "x".repeat(5000)
    ));
    let (status, body) = flagger(&gate, "/gate", &big, token).await;
    assert_eq!(status, 413, "{body}");

    // Behind the same token as GET: a bare 401 without it.
    let (status, body) = flagger(&gate, "/gate/istio", &go, None).await;
    assert_eq!(status, 401, "{body}");
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_gets_200_with_the_decision_in_the_body_when_it_asks_for_it() {
    let (_prom, _dir, gate) = started().await;
    let auth = [("Authorization".to_string(), format!("Bearer {TOKEN}"))];

    let (status, body) = argo(
        &format!("{}/gate/blocked?status=always-200", gate.base),
        &auth,
    )
    .await;
    assert_eq!(
        (status, &body["decision"]),
        (200, &"no_go".into()),
        "{body}"
    );
    let (status, body) = argo(
        &format!("{}/gate/istio?status=always-200", gate.base),
        &auth,
    )
    .await;
    assert_eq!((status, &body["decision"]), (200, &"go".into()), "{body}");
    // Without the parameter, GET stays what `curl -f` needs.
    let (status, body) = argo(&format!("{}/gate/blocked", gate.base), &auth).await;
    assert_eq!(
        (status, &body["decision"]),
        (503, &"no_go".into()),
        "{body}"
    );
    let (status, body) = argo(&format!("{}/gate/blocked?status=always", gate.base), &auth).await;
    assert_eq!(status, 400, "{body}");
    gate.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The examples in deploy/integrations/

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The CRDs, beside the repository (read-only in CI).
fn crd(file: &str) -> PathBuf {
    let path = repo().join("../shared/crds").join(file);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

fn venv_program(name: &str) -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let venv = VENV.get_or_init(|| {
        let venv = std::env::var_os("DEPLOY_TEST_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/py"));
        let status = Command::new(repo().join("scripts/ensure-python-tools.sh"))
            .arg(&venv)
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "scripts/ensure-python-tools.sh failed");
        venv
    });
    venv.join("bin").join(name)
}

/// Reads a one-document YAML file as JSON; with `crd` (kind and version), the file holds CRDs
/// and the answer is the `openAPIV3Schema` of that kind's served version.
fn yaml_json(path: &Path, crd: Option<[&str; 2]>) -> Value {
    const SCRIPT: &str = r#"
import json, sys, yaml
if len(sys.argv) > 2:
    [crd] = [d for d in yaml.safe_load_all(open(sys.argv[1]))
             if d and d["kind"] == "CustomResourceDefinition" and d["spec"]["names"]["kind"] == sys.argv[2]]
    [v] = [v for v in crd["spec"]["versions"] if v["name"] == sys.argv[3] and v["served"]]
    doc = v["schema"]["openAPIV3Schema"]
else:
    doc = yaml.safe_load(open(sys.argv[1]))
json.dump(doc, sys.stdout)
"#;
    let out = Command::new(venv_program("python"))
        .arg("-c")
        .arg(SCRIPT)
        .arg(path)
        .args(crd.into_iter().flatten())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// check-jsonschema's verdict on `doc` against `schema`: Ok, or its complaint.
fn validate(schema: &Value, doc: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let (schema_path, doc_path) = (dir.path().join("schema.json"), dir.path().join("doc.json"));
    std::fs::write(&schema_path, schema.to_string()).unwrap();
    std::fs::write(&doc_path, doc.to_string()).unwrap();
    let out = Command::new(venv_program("check-jsonschema"))
        .arg("--schemafile")
        .arg(&schema_path)
        .arg(&doc_path)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn example(file: &str) -> Value {
    yaml_json(&repo().join("deploy/integrations").join(file), None)
}

#[test]
fn the_examples_match_the_tools_crd_schemas() {
    for (file, crd_file, api_version) in [
        ("flagger-canary.yaml", "flagger.yaml", "flagger.app/v1beta1"),
        (
            "argo-analysistemplate.yaml",
            "argo-rollouts-analysistemplate.yaml",
            "argoproj.io/v1alpha1",
        ),
        (
            "kargo-stage.yaml",
            "kargo-stages.yaml",
            "kargo.akuity.io/v1alpha1",
        ),
        (
            "fleet/flagger-canary.yaml",
            "flagger.yaml",
            "flagger.app/v1beta1",
        ),
        (
            "fleet/argo-analysistemplate-cluster.yaml",
            "argo-rollouts-analysistemplate.yaml",
            "argoproj.io/v1alpha1",
        ),
        (
            "fleet/argo-analysistemplate-wave.yaml",
            "argo-rollouts-analysistemplate.yaml",
            "argoproj.io/v1alpha1",
        ),
        (
            "fleet/kargo-stage-cluster.yaml",
            "kargo-stages.yaml",
            "kargo.akuity.io/v1alpha1",
        ),
        (
            "fleet/kargo-stage-wave.yaml",
            "kargo-stages.yaml",
            "kargo.akuity.io/v1alpha1",
        ),
    ] {
        let doc = example(file);
        assert_eq!(doc["apiVersion"], api_version, "{file}");
        let version = api_version.rsplit('/').next().unwrap();
        let kind = doc["kind"].as_str().unwrap();
        let schema = yaml_json(&crd(crd_file), Some([kind, version]));
        validate(&schema, &doc).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    // The validator does see the schema: a webhook type Flagger does not know is refused.
    let mut canary = example("flagger-canary.yaml");
    canary["spec"]["analysis"]["webhooks"][0]["type"] = "confirm".into();
    let schema = yaml_json(&crd("flagger.yaml"), Some(["Canary", "v1beta1"]));
    assert!(validate(&schema, &canary).is_err());

    // Kargo verifies with the template, and keeps Freight upstream for a soak time.
    let stage = example("kargo-stage.yaml");
    let template = example("argo-analysistemplate.yaml");
    assert_eq!(
        stage["spec"]["verification"]["analysisTemplates"][0]["name"],
        template["metadata"]["name"]
    );
    assert!(stage["spec"]["requestedFreight"][0]["sources"]["requiredSoakTime"].is_string());
    // In fleet mode each Stage verifies with the template for its scope, and says which.
    for (stage, template, arg) in [
        (
            "kargo-stage-cluster.yaml",
            "argo-analysistemplate-cluster.yaml",
            "cluster",
        ),
        (
            "kargo-stage-wave.yaml",
            "argo-analysistemplate-wave.yaml",
            "wave",
        ),
    ] {
        let stage = example(&format!("fleet/{stage}"));
        let template = example(&format!("fleet/{template}"));
        let verification = &stage["spec"]["verification"];
        assert_eq!(
            verification["analysisTemplates"][0]["name"],
            template["metadata"]["name"]
        );
        let args = verification["args"].as_array().unwrap();
        assert!(args
            .iter()
            .any(|a| a["name"] == arg && a["value"].is_string()));
        assert!(stage["spec"]["requestedFreight"][0]["sources"]["requiredSoakTime"].is_string());
    }
    // Flagger never rolls back on the gate's go.
    for file in ["flagger-canary.yaml", "fleet/flagger-canary.yaml"] {
        let canary = example(file);
        let hooks = canary["spec"]["analysis"]["webhooks"].as_array().unwrap();
        assert!(hooks.iter().all(|h| h["type"] != "rollback"), "{file}");
    }

    // The README's snippets say what the examples do.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let metric = &template["spec"]["metrics"][0];
    for quoted in [
        format!(
            "successCondition: {}",
            metric["successCondition"].as_str().unwrap()
        ),
        format!(
            "url: \"{}\"",
            metric["provider"]["web"]["url"].as_str().unwrap()
        ),
        format!(
            "requiredSoakTime: {}",
            stage["spec"]["requestedFreight"][0]["sources"]["requiredSoakTime"]
                .as_str()
                .unwrap()
        ),
    ] {
        assert!(readme.contains(&quoted), "README.md lacks {quoted}");
    }
}

/// The outcome of one measurement as Argo's `EvaluateResult` reaches it, for conditions of the
/// form `result.FIELD == "VALUE"`: without a failureCondition, not successful is Failed.
fn argo_phase(metric: &Value, result: &Value) -> &'static str {
    let holds = |condition: &Value| -> Option<bool> {
        let condition = condition.as_str()?;
        let (field, value) = condition
            .split_once(" == ")
            .expect("result.FIELD == \"VALUE\"");
        let field = field.strip_prefix("result.").expect("result.FIELD");
        let value = value.trim_matches('"');
        Some(result.get(field).and_then(Value::as_str) == Some(value))
    };
    let success = holds(&metric["successCondition"]);
    let failure = holds(&metric["failureCondition"]);
    let (success, failure) = match (success, failure) {
        (None, None) => return "Successful",
        (Some(s), None) => (s, !s),
        (None, Some(f)) => (!f, f),
        (Some(s), Some(f)) => (s, f),
    };
    match (success, failure) {
        (_, true) => "Failed",
        (false, false) => "Inconclusive",
        (true, false) => "Successful",
    }
}

/// The template's measurement, as Argo would make it against a real gate: its URL (the gate's
/// address for the in-cluster one, `args.phase` filled in), its headers, its conditions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analysis_template_succeeds_on_go_only_against_a_real_gate() {
    let (_prom, _dir, gate) = started().await;
    let template = example("argo-analysistemplate.yaml");
    let metric = &template["spec"]["metrics"][0];
    let web = &metric["provider"]["web"];
    assert!(
        web.get("jsonPath").is_none(),
        "the tests read the whole body"
    );
    assert_eq!(metric["consecutiveSuccessLimit"], 1);
    let url = web["url"].as_str().unwrap();
    let path = &url[url.find("/gate").expect("a /gate URL")..];
    let headers: Vec<(String, String)> = web["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let value = h["value"]
                .as_str()
                .unwrap()
                .replace("{{args.gate-token}}", TOKEN);
            (h["key"].as_str().unwrap().to_string(), value)
        })
        .collect();
    for (phase, expected) in [("istio", "Successful"), ("blocked", "Failed")] {
        let url = format!("{}{}", gate.base, path.replace("{{args.phase}}", phase));
        let (status, result) = argo(&url, &headers).await;
        assert_eq!(status, 200, "{url}: {result}");
        assert_eq!(argo_phase(metric, &result), expected, "{phase}: {result}");
    }
    // A renamed field would never be Successful: the evaluator reads the real field.
    let renamed = serde_json::json!({"verdict": "go"});
    assert_eq!(argo_phase(metric, &renamed), "Failed");
    gate.stop().await;
}

/// Without a fresh verdict (here before the first evaluation, Prometheus never answering), each
/// tool reads "hold": Flagger a 403, Argo a 200 whose `decision` (unknown) is never Successful.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_verdict_every_tool_holds() {
    let (url, holder) = hanging_server().await;
    let dir = tempfile::tempdir().unwrap();
    let gate = gate(dir.path(), &url, "60s").await;
    let (status, body) = flagger(&gate, "/gate/istio", &flagger_body("{}"), Some(TOKEN)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no evaluation"),
        "{body}"
    );
    assert_eq!(body["decision"], "unknown", "{body}");
    let template = example("argo-analysistemplate.yaml");
    let metric = &template["spec"]["metrics"][0];
    let auth = [("Authorization".to_string(), format!("Bearer {TOKEN}"))];
    let (status, result) = argo(
        &format!("{}/gate/istio?status=always-200", gate.base),
        &auth,
    )
    .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["decision"], "unknown", "{result}");
    assert_eq!(argo_phase(metric, &result), "Failed", "{result}");
    gate.stop().await;
    holder.abort();
}

/// A gate that has evaluated, but whose Prometheus is down: its verdict is unknown (the queries
/// errored, nothing known blocks), which every tool reads as "hold", never as go: `GET` 503,
/// Flagger 403, and the template's measurement not Successful.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_whose_prometheus_is_down_is_unknown_and_holds_every_tool() {
    let dir = tempfile::tempdir().unwrap();
    let down = format!("http://127.0.0.1:{}", free_port());
    let gate = gate(dir.path(), &down, "2s").await;
    gate.ready().await;
    let auth = [("Authorization".to_string(), format!("Bearer {TOKEN}"))];
    let (status, body) = argo(&format!("{}/gate/istio", gate.base), &auth).await;
    assert_eq!(
        (status, &body["decision"]),
        (503, &"unknown".into()),
        "{body}"
    );
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap_or_default()
            .contains("is unreachable"),
        "{body}"
    );
    let (status, body) = flagger(&gate, "/gate/istio", &flagger_body("{}"), Some(TOKEN)).await;
    assert_eq!(
        (status, &body["decision"]),
        (403, &"unknown".into()),
        "{body}"
    );

    let metric = &example("argo-analysistemplate.yaml")["spec"]["metrics"][0];
    let (status, result) = argo(
        &format!("{}/gate/istio?status=always-200", gate.base),
        &auth,
    )
    .await;
    assert_eq!(
        (status, &result["decision"]),
        (200, &"unknown".into()),
        "{result}"
    );
    assert_eq!(argo_phase(metric, &result), "Failed", "{result}");
    gate.stop().await;
}

/// The Canary's webhooks, posted as Flagger posts them (their URL's path, their metadata).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_webhooks_pass_on_go() {
    let (_prom, _dir, gate) = started().await;
    let canary = example("flagger-canary.yaml");
    for hook in canary["spec"]["analysis"]["webhooks"].as_array().unwrap() {
        let url = hook["url"].as_str().unwrap();
        let path = &url[url.find("/gate").unwrap()..];
        let metadata = hook.get("metadata").cloned().unwrap_or_default();
        let metadata = if metadata.is_null() {
            "{}".to_string()
        } else {
            metadata.to_string()
        };
        let (status, body) = flagger(&gate, path, &flagger_body(&metadata), Some(TOKEN)).await;
        assert_eq!(status, 200, "{}: {body}", hook["name"]);
        assert_eq!(body["phase"], "istio", "{body}");
    }
    gate.stop().await;
}

// Fleet mode: the examples in deploy/integrations/fleet/ against a fleet gate.

/// A fleet gate behind the token: wave `staging` (stg-euw1) healthy; wave `prod` with prod-euw1
/// healthy, prod-use1 failing istio and prod-apne2 sending nothing (unknown).
async fn fleet_gate(dir: &Path) -> (TestPrometheus, TestGate) {
    let t = now();
    let mut data = OpenMetrics::new();
    for (cluster, errors) in [("stg-euw1", 0.0), ("prod-euw1", 0.0), ("prod-use1", 5.0)] {
        data.gauge("up", &format!(r#"cluster="{cluster}""#), around(t), |_| {
            Some(1.0)
        });
        let labels = format!(r#"cluster="{cluster}",destination_service="reviews""#);
        data.gauge("mesh_5xx", &labels, around(t), |_| Some(errors));
    }
    let prom = TestPrometheus::start(&data.render());
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let path = dir.join("gate.yaml");
    std::fs::write(
        &path,
        format!(
            r#"prometheus: {{url: "{}", timeout: 2s}}
evaluation: {{interval: 1s}}
server: {{auth: {{bearer_token_file: "{}"}}}}
fleet:
  waves:
    - {{name: staging, clusters: [stg-euw1]}}
    - {{name: prod, clusters: [prod-euw1, prod-use1, prod-apne2]}}
phases: [{{name: istio}}]
signals:
  - {{name: mesh_5xx, query: "max by (destination_service) (mesh_5xx)", fail: "> 1", critical: true, phases: [istio]}}
"#,
            prom.url(),
            token.display()
        ),
    )
    .unwrap();
    let gate = TestGate::start(config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"))).await;
    gate.ready().await;
    (prom, gate)
}

/// The fleet templates' measurements against a fleet gate: per cluster and per wave, go is
/// Successful; no-go and unknown are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_templates_succeed_on_their_cluster_or_wave_going_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_prom, gate) = fleet_gate(dir.path()).await;
    let cases = [
        ("cluster", "prod-euw1", "go", "Successful"),
        ("cluster", "prod-use1", "no_go", "Failed"),
        ("cluster", "prod-apne2", "unknown", "Failed"),
        ("wave", "staging", "go", "Successful"),
        ("wave", "prod", "no_go", "Failed"),
    ];
    for (scope, name, decision, expected) in cases {
        let template = example(&format!("fleet/argo-analysistemplate-{scope}.yaml"));
        let metric = &template["spec"]["metrics"][0];
        let url = metric["provider"]["web"]["url"].as_str().unwrap();
        let path = url[url.find("/gate").unwrap()..]
            .replace("{{args.phase}}", "istio")
            .replace(&format!("{{{{args.{scope}}}}}"), name);
        let headers = vec![("Authorization".to_string(), format!("Bearer {TOKEN}"))];
        let (status, result) = argo(&format!("{}{path}", gate.base), &headers).await;
        assert_eq!(status, 200, "{path}: {result}");
        assert_eq!(result["decision"], decision, "{path}: {result}");
        assert_eq!(result[scope], name, "{path}: {result}");
        assert_eq!(argo_phase(metric, &result), expected, "{path}: {result}");
    }
    gate.stop().await;
}

/// The fleet Canary's webhooks, posted as Flagger posts them: its cluster is go, its wave is
/// not (another cluster of it fails), and each answer names what it was asked about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_canary_asks_for_its_cluster_and_its_wave() {
    let dir = tempfile::tempdir().unwrap();
    let (_prom, gate) = fleet_gate(dir.path()).await;
    let canary = example("fleet/flagger-canary.yaml");
    let hooks = canary["spec"]["analysis"]["webhooks"].as_array().unwrap();
    let mut answers = Vec::new();
    for hook in hooks {
        let url = hook["url"].as_str().unwrap();
        let path = &url[url.find("/gate").unwrap()..];
        let body = flagger_body(&hook["metadata"].to_string());
        let (status, body) = flagger(&gate, path, &body, Some(TOKEN)).await;
        answers.push((hook["type"].as_str().unwrap().to_string(), status, body));
    }
    let (kind, status, body) = &answers[0];
    assert_eq!((kind.as_str(), *status), ("confirm-rollout", 200), "{body}");
    assert_eq!(body["cluster"], "prod-euw1", "{body}");
    let (kind, status, body) = &answers[1];
    assert_eq!(
        (kind.as_str(), *status),
        ("confirm-promotion", 403),
        "{body}"
    );
    assert_eq!(body["wave"], "prod", "{body}");
    assert_eq!(body["clusters"][0]["cluster"], "prod-use1", "{body}");
    gate.stop().await;
}
