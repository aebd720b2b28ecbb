//! deploy/ against the code, so that the Kubernetes files cannot drift from it: every metric
//! and label the PrometheusRule uses is exported by a running router, and every router
//! configuration embedded in a ConfigMap passes `alert-router check-config` with the Secret
//! of its variant mounted where it says. (deploy/validate.sh checks the manifests' schemas
//! and the rules' behaviour with promtool.)
mod common;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

/// The documents of a manifest file.
fn docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn find(path: &str, kind: &str, name: &str) -> Value {
    docs(path)
        .into_iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{path}: no {kind}/{name}"))
}

/// A `data`/`stringData` entry of a ConfigMap or Secret.
fn entries(doc: &Value) -> BTreeMap<String, String> {
    ["data", "stringData"]
        .iter()
        .filter_map(|k| doc[k].as_object())
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_string()))
        .collect()
}

/// Labels Prometheus attaches to every scraped sample of a ServiceMonitor target (the
/// operator's relabelling), and `le` of histogram buckets.
const TARGET_LABELS: [&str; 8] = [
    "job",
    "namespace",
    "pod",
    "instance",
    "service",
    "endpoint",
    "container",
    "le",
];

/// The alerting rules of deploy/monitoring.yaml: (alert, expr, annotations as one text).
fn rules() -> Vec<(String, String, String)> {
    let rule = find("deploy/monitoring.yaml", "PrometheusRule", "alert-router");
    let mut out = Vec::new();
    for group in rule["spec"]["groups"].as_array().expect("groups") {
        for r in group["rules"].as_array().expect("rules") {
            let annotations = r["annotations"]
                .as_object()
                .map(|a| {
                    a.values()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            out.push((
                r["alert"].as_str().expect("alert").to_string(),
                r["expr"].as_str().expect("expr").to_string(),
                annotations,
            ));
        }
    }
    out
}

/// Sample names and, per sample name, the label names seen, from a text exposition; a
/// family without samples yet counts by its `# TYPE` line (counter `x` → `x_total`,
/// histogram `x` → `x_bucket`, `x_sum`, `x_count`).
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let label = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="#).unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            let names: Vec<String> = match kind {
                "counter" => vec![format!("{name}_total")],
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect(),
                _ => vec![name.to_string()],
            };
            for n in names {
                out.entry(n).or_default();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = line[end..]
                .strip_prefix('{')
                .and_then(|l| l.split_once('}'))
                .map(|(l, _)| l)
                .unwrap_or("");
            out.entry(line[..end].to_string())
                .or_default()
                .extend(label.captures_iter(labels).map(|c| c[1].to_string()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_rule_uses_only_metrics_and_labels_the_router_exports() {
    init();
    // Integration counters exist at 0 from the worker's start, but labelled families of
    // other kinds appear with their first sample: traffic that makes every labelled family
    // the rules use show one. A dead letter (a destination answering 400),
    // deliveries, waits for the rate limiter and a storm digest (three groups behind a limit
    // of one per 2 s, digest_threshold 1), a rejected webhook.
    let bad = MockServer::start(Reply::status(400, "no"), None).await;
    let good = MockServer::start(Reply::ok("ok"), None).await;
    let router = RouterProc::start(&format!(
        "ingest:\n  auth: {{bearer_tokens: [t0ken]}}\nroute:\n  receiver: slow\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  routes:\n    - receiver: dead\n      matchers: ['alertname=\"Dead\"']\nreceivers:\n  - name: dead\n    webhook_configs: [{{url: '{}'}}]\n  - name: slow\n    webhook_configs:\n      - url: '{}'\n        rate_limit: {{messages: 1, per: 2s, burst: 1}}\n        digest_threshold: 1\n",
        bad.url("/dead"),
        good.url("/slow")
    ))
    .await;
    let client = reqwest::Client::new();
    let body = webhook(vec![
        alert(&[("alertname", "Dead")], "firing"),
        alert(&[("alertname", "Slow1")], "firing"),
        alert(&[("alertname", "Slow2")], "firing"),
        alert(&[("alertname", "Slow3")], "firing"),
    ]);
    let url = format!("{}/webhook", router.base);
    let r = client.post(&url).json(&body).send().await.expect("post");
    assert_eq!(r.status(), 401);
    let r = client
        .post(&url)
        .bearer_auth("t0ken")
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let text = wait_for(
        Duration::from_secs(30),
        "a dead letter, a delivery, a rate-limited wait and a digest",
        || async {
            let text = reqwest::get(format!("{}/metrics", router.base))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let has = |m: &str| text.lines().any(|l| l.starts_with(m));
            (has("alert_router_notifications_failed_total{")
                && has("alert_router_notifications_sent_total{")
                && has("alert_router_rate_limited_waits_total{")
                && has("alert_router_digests_total{"))
            .then_some(text)
        },
    )
    .await;
    let metrics = exported(&text);
    let labels_seen: BTreeSet<&str> = metrics
        .values()
        .flatten()
        .map(String::as_str)
        .chain(TARGET_LABELS)
        .collect();

    let name = regex::Regex::new(r"\b(alert_router_[a-zA-Z0-9_]+)").unwrap();
    let selector = regex::Regex::new(r"\b(alert_router_[a-zA-Z0-9_]+)\{([^}]*)\}").unwrap();
    let matcher = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)"#).unwrap();
    let clause =
        regex::Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
            .unwrap();
    let template_label = regex::Regex::new(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)").unwrap();

    let rules = rules();
    assert!(
        rules.len() >= 10,
        "{} alerts in the PrometheusRule",
        rules.len()
    );
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for (alert, expr, annotations) in &rules {
        for c in name.captures_iter(expr) {
            let m = c[1].to_string();
            if !metrics.contains_key(&m) {
                problems.push(format!("{alert}: metric {m} is not exported"));
            }
            used.insert(m);
        }
        for c in selector.captures_iter(expr) {
            for l in matcher.captures_iter(&c[2]) {
                let have = metrics.get(&c[1]).cloned().unwrap_or_default();
                // with samples, the label must be on this metric; without, on some metric
                let known = if have.is_empty() {
                    labels_seen.contains(&l[1])
                } else {
                    have.contains(&l[1])
                };
                if !known {
                    problems.push(format!("{alert}: {} has no label {}", &c[1], &l[1]));
                }
            }
        }
        let grouped = clause.captures_iter(expr).flat_map(|c| {
            c[1].split(',')
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
        });
        let templated = template_label
            .captures_iter(annotations)
            .map(|c| c[1].to_string());
        for l in grouped.chain(templated) {
            if !labels_seen.contains(l.as_str()) {
                problems.push(format!(
                    "{alert}: label {l} is neither the router's nor a target label"
                ));
            }
        }
        if let Some(job) = expr.split("job=\"").nth(1) {
            let job = job.split('"').next().unwrap_or("");
            // the job is the scraped Service's name (ServiceMonitor default)
            for f in ["deploy/kubernetes.yaml", "deploy/sidecar/alert-router.yaml"] {
                find(f, "Service", job);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // not vacuous: the rules cover the families that matter
    for m in [
        "alert_router_notifications_failed_total",
        "alert_router_notification_queue_depth",
        "alert_router_rate_limited_waits_total",
        "alert_router_ingest_rejected_total",
        "alert_router_config_last_reload_successful",
    ] {
        assert!(used.contains(m), "no rule uses {m}");
    }
    // and the check itself can fail
    assert!(!metrics.contains_key("alert_router_notifications_dead_total"));
    assert!(!labels_seen.contains("recevier"));
    router.terminate().await;
}

/// Run `alert-router check-config` on the router configuration of a ConfigMap, with the
/// variant's Secret written where the pod mounts it; `Err` carries its output.
fn check_configmap(manifest: &str, secret: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    for (k, v) in entries(secret) {
        std::fs::write(secrets.join(k), v).unwrap();
    }
    let config = entries(&find(manifest, "ConfigMap", "alert-router"))
        .remove("alert-router.yml")
        .unwrap_or_else(|| panic!("{manifest}: no alert-router.yml in the ConfigMap"));
    assert!(config.contains("listen: 0.0.0.0:9095"), "{manifest}");
    let file = dir.path().join("alert-router.yml");
    std::fs::write(
        &file,
        config.replace(
            "/etc/alert-router/secrets/",
            &format!("{}/", secrets.display()),
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_alert-router"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    if o.status.success() && stdout.contains("SUCCESS") {
        Ok(())
    } else {
        Err(format!(
            "{manifest}: {stdout}{}",
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

#[test]
fn configmap_configs_pass_check_config() {
    for manifest in ["deploy/kubernetes.yaml", "deploy/sidecar/alert-router.yaml"] {
        check_configmap(manifest, &find(manifest, "Secret", "alert-router")).unwrap();
    }
    // and a Secret without the token the config reads fails the check
    let mut secret = find("deploy/sidecar/alert-router.yaml", "Secret", "alert-router");
    secret["stringData"]
        .as_object_mut()
        .unwrap()
        .remove("ingest-token");
    let e = check_configmap("deploy/sidecar/alert-router.yaml", &secret)
        .expect_err("a missing ingest-token file went unnoticed");
    assert!(e.contains("ingest.auth.bearer_token_file"), "{e}");
}

#[test]
fn sidecar_alertmanager_posts_to_its_own_router_with_the_token() {
    let f = "deploy/sidecar/alert-router.yaml";
    let am = entries(&find(f, "Secret", "alertmanager-main"))
        .remove("alertmanager.yaml")
        .expect("alertmanager.yaml");
    let am: Value = serde_saphyr::from_str(&am).expect("alertmanager.yaml parses");
    let receiver = am["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == am["route"]["receiver"])
        .expect("root receiver")
        .clone();
    let hook = &receiver["webhook_configs"][0];
    assert_eq!(hook["url"], "http://127.0.0.1:9095/webhook");
    assert_eq!(hook["send_resolved"], true);
    // Alertmanager reads the token from the Secret `alert-router`, mounted by the operator
    // (spec.secrets) or the StatefulSet at /etc/alertmanager/secrets/alert-router/
    let file = hook["http_config"]["authorization"]["credentials_file"]
        .as_str()
        .expect("credentials_file");
    let key = file
        .strip_prefix("/etc/alertmanager/secrets/alert-router/")
        .expect("token from the alert-router Secret");
    let router_secret = entries(&find(f, "Secret", "alert-router"));
    assert!(router_secret.contains_key(key), "no {key} in the Secret");
    let config = entries(&find(f, "ConfigMap", "alert-router"))
        .remove("alert-router.yml")
        .unwrap();
    assert!(config.contains(&format!("/etc/alert-router/secrets/{key}")));
    let op = find(
        "deploy/sidecar/prometheus-operator.yaml",
        "Alertmanager",
        "main",
    );
    assert!(op["spec"]["secrets"]
        .as_array()
        .unwrap()
        .contains(&Value::from("alert-router")));
}
