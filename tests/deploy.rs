//! The deployment files: Kubernetes manifests parse and carry what a DaemonSet needs (and
//! their embedded config and rules load in medic), Prometheus files pass promtool, the
//! Grafana dashboard queries only metrics a running medic exposes, and the compose file
//! mounts the socket read-only with the seed's variables.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use yaml_serde::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read");
    yaml_serde::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

#[test]
fn kubernetes_manifests_are_complete() {
    let dir = deploy().join("kubernetes");
    let mut kinds = BTreeSet::new();
    let mut all = Vec::new();
    for e in std::fs::read_dir(&dir).expect("dir") {
        let p = e.expect("e").path();
        if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        for d in docs(&p) {
            for f in ["apiVersion", "kind"] {
                assert!(
                    d.get(f).and_then(Value::as_str).is_some(),
                    "{}: no {f}",
                    p.display()
                );
            }
            assert!(
                s(&d, &["metadata", "name"])
                    .and_then(Value::as_str)
                    .is_some(),
                "{}: no metadata.name",
                p.display()
            );
            kinds.insert(d["kind"].as_str().expect("kind").to_string());
            all.push(d);
        }
    }
    for k in [
        "DaemonSet",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Namespace",
    ] {
        assert!(kinds.contains(k), "no {k} in {kinds:?}");
    }
    let ds = all
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("daemonset");
    assert_eq!(ds["apiVersion"], "apps/v1");
    let tpl = &ds["spec"]["template"];
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"], tpl["metadata"]["labels"],
        "selector matches the pods"
    );
    let ann = &tpl["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], "9464");
    let pod = &tpl["spec"];
    let volumes: BTreeSet<&str> = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    let c = &pod["containers"][0];
    assert!(c["image"].as_str().is_some_and(|i| i.starts_with("medic")));
    for r in ["requests", "limits"] {
        for k in ["cpu", "memory"] {
            assert!(c["resources"][r][k].as_str().is_some(), "resources.{r}.{k}");
        }
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let mounts = c["volumeMounts"].as_sequence().expect("mounts");
    for m in mounts {
        assert!(
            volumes.contains(m["name"].as_str().expect("name")),
            "mount of an undefined volume: {m:?}"
        );
    }
    let sock = mounts
        .iter()
        .find(|m| m["mountPath"] == "/var/run/docker.sock")
        .expect("socket mount");
    assert_eq!(sock["readOnly"], true, "the socket is read-only");
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"] == "/var/lib/docker/containers"),
        "host logs"
    );
    assert!(
        mounts.iter().any(|m| m["mountPath"] == "/var/lib/medic"),
        "state"
    );
    // The ConfigMap's config and rules load in medic itself.
    let cm = all
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("configmap");
    let cfg = cm["data"]["medic.yaml"].as_str().expect("medic.yaml");
    medic::config::Config::parse("configmap medic.yaml", cfg).expect("the config is valid");
    let rules_dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        rules_dir.path().join("custom.yaml"),
        cm["data"]["custom.yaml"].as_str().expect("rules"),
    )
    .expect("write");
    let set =
        medic::detect::load(&[rules_dir.path().to_path_buf()]).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!set.rules().is_empty());
    let secret = all.iter().find(|d| d["kind"] == "Secret").expect("secret");
    assert!(secret["stringData"]["api-token"].as_str().is_some());
}

#[test]
fn prometheus_files_pass_promtool() {
    let p = deploy().join("prometheus");
    for args in [
        vec![
            "check",
            "rules",
            p.join("alerts.yml").to_str().expect("utf-8"),
        ],
        vec![
            "check",
            "config",
            p.join("prometheus.yml").to_str().expect("utf-8"),
        ],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .output()
            .expect("promtool from Debian's prometheus package");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn compose_mounts_the_socket_read_only_and_speaks_the_seed_variables() {
    let c = &docs(&deploy().join("docker-compose.yml"))[0];
    let medic = &c["services"]["medic"];
    let vols: Vec<&str> = medic["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        vols.contains(&"/var/run/docker.sock:/var/run/docker.sock:ro"),
        "{vols:?}"
    );
    assert!(
        vols.iter().any(|v| v.starts_with("medic-state:")),
        "{vols:?}"
    );
    let env = medic["environment"].as_mapping().expect("environment");
    let known: BTreeSet<&str> = medic::config::ENV_OVERRIDES
        .iter()
        .map(|(k, _)| *k)
        .collect();
    for k in [
        "MONITORED_CONTAINERS",
        "CHECK_INTERVAL_SECONDS",
        "ERROR_COOLDOWN_MINUTES",
        "JIRA_API_URL",
    ] {
        assert!(env.contains_key(k), "{k} missing from the compose file");
        assert!(known.contains(k), "{k} does not map onto the config");
    }
    assert!(c["services"]["demo-app"]["image"].as_str().is_some());
    let dockerfile =
        std::fs::read_to_string(deploy().join("Dockerfile.prebuilt")).expect("dockerfile");
    for want in [
        "FROM scratch",
        "HEALTHCHECK",
        "EXPOSE 9464",
        "USER 65532",
        "ca-certificates.crt",
    ] {
        assert!(dockerfile.contains(want), "Dockerfile.prebuilt: no {want}");
    }
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn grafana_queries_only_metrics_medic_exposes() {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/medic.json")).expect("json"),
    )
    .expect("valid JSON");
    let mut names = BTreeSet::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("medic_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.insert(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    assert!(names.len() >= 12, "{names:?}");
    // A medic that reads logs with errors and bad input, classifies with an LLM and
    // tickets: every dashboard series should exist.
    let llm = support::fake::Fake::start(|_| {
        support::fake::Reply::json(
            200,
            json!({
                "content": [{"type": "text", "text": "{\"is_error\":true,\"severity\":\"high\",\"error_type\":\"bug\",\"title\":\"t\",\"description\":\"d\",\"affected_component\":\"c\",\"suggested_fix\":\"f\",\"confidence\":0.5}"}],
                "usage": {"input_tokens": 5, "output_tokens": 5}
            }),
        )
    });
    let dir = tempfile::tempdir().expect("dir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let cfg = dir.path().join("medic.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir: {}\napi: {{ listen: \"127.0.0.1:{port}\" }}\nsources:\n  docker: {{ enabled: false }}\n  files: [{{ path: {} }}, {{ path: {} }}]\nwindow: {{ group_wait: 1s }}\nescalate:\n  llm: {{ provider: anthropic, model: m, base_url: \"{}\", api_key_env: TEST_KEY }}\n",
            dir.path().join("state").display(),
            fixtures.join("app.log").display(),
            fixtures.join("bad-input.log").display(),
            llm.url
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("TEST_KEY", "k")
        .env_remove("MEDIC_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("medic run");
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let metrics = get(port, "/metrics").unwrap_or_default();
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| {
                let base = n.trim_end_matches("_bucket");
                !metrics
                    .lines()
                    .any(|l| !l.starts_with('#') && l.starts_with(base))
            })
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not expose: {missing:?}"
    );
}
