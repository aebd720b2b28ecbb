//! The command line: `check-config` on the shipped configs and on broken ones, `--version`.
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alert-router"));
    c.env(
        "SLACK_OPS_WEBHOOK",
        "https://hooks.slack.test/services/T/B/X",
    );
    c
}

#[test]
fn shipped_configs_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    // the examples reference secret files; give them stand-ins with the same names
    let yaml_paths = [
        "config/alert-router.yml",
        "config/docker.yml",
        "config/examples/email.yml",
        "config/examples/slack.yml",
        "config/examples/webhook.yml",
    ];
    let mut files = Vec::new();
    for p in yaml_paths {
        let text = std::fs::read_to_string(p).unwrap();
        let text = text.replace("/etc/alert-router/", &format!("{}/", dir.path().display()));
        for secret in [
            "admin-token",
            "ingest-token",
            "smtp-password",
            "slack-payments-url",
            "slack-bot-token",
        ] {
            let v = if secret.ends_with("url") {
                "https://hooks.slack.test/services/T/B/Y"
            } else {
                "s3cret"
            };
            std::fs::write(dir.path().join(secret), v).unwrap();
        }
        let out = dir.path().join(p.replace('/', "_"));
        std::fs::write(&out, text).unwrap();
        files.push(out);
    }
    // the config inside deploy/kubernetes.yaml's ConfigMap
    let manifest = std::fs::read_to_string("deploy/kubernetes.yaml").unwrap();
    let embedded: String = manifest
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("alert-router.yml: |"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    assert!(
        embedded.contains("slack_configs"),
        "ConfigMap config not found"
    );
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/admin-token"), "t0ken").unwrap();
    std::fs::write(
        dir.path().join("secrets/slack-url"),
        "https://hooks.slack.test/services/T/B/Z",
    )
    .unwrap();
    let k8s = dir.path().join("kubernetes-configmap.yml");
    std::fs::write(
        &k8s,
        embedded.replace("/etc/alert-router/", &format!("{}/", dir.path().display())),
    )
    .unwrap();
    files.push(k8s);
    let o = bin().arg("check-config").args(&files).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(stdout.matches("SUCCESS").count(), files.len(), "{stdout}");
}

#[test]
fn broken_config_fails_with_file_line_column_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, "route:\n  receiver: x\nreceivers:\n  - name: x\n").unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "route:\n  receiver: x\n  group_wait: soon\nreceivers:\n  - name: x\n",
    )
    .unwrap();
    let o = bin()
        .arg("check-config")
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success());
    assert!(stdout.contains("good.yml'  SUCCESS"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:3:15: not a valid duration \"soon\"",
            bad.display()
        )),
        "{stdout}"
    );
    let o = bin()
        .arg("check-config")
        .arg(dir.path().join("missing.yml"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("cannot read"));
}

#[test]
fn version_flag() {
    let o = bin().arg("--version").output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("alert-router {}", env!("CARGO_PKG_VERSION"))
    );
}

/// An `alertmanager.yml` as kube-prometheus-stack users write it — Discord, Teams
/// (Workflows), Telegram, Webex and Slack bot-token receivers, with Go templates and a
/// `templates:` file —
/// passes `check-config` unchanged (every integration is built and rendered).
#[test]
fn an_alertmanager_yml_with_chat_receivers_loads_unchanged() {
    check_config_passes("tests/fixtures/alertmanager-receivers.yml");
}

fn check_config_passes(path: &str) {
    let out = bin().arg("check-config").arg(path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SUCCESS"), "{stdout}");
}

/// An `alertmanager.yml` with `inhibit_rules`, `time_intervals`, the deprecated
/// `mute_time_intervals` and routes with `mute_time_intervals` / `active_time_intervals`
/// passes `check-config` unchanged.
#[test]
fn an_alertmanager_yml_with_inhibit_rules_and_time_intervals_loads_unchanged() {
    check_config_passes("tests/fixtures/alertmanager-inhibit-timeintervals.yml");
}

/// Go template errors fail `check-config` and name where they are: the template file with
/// line and column, or the receiver field with the line and column inside it.
#[test]
fn check_config_reports_template_errors_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tmpl")).unwrap();
    let bad = dir.path().join("tmpl/bad.tmpl");
    std::fs::write(
        &bad,
        "{{ define \"x\" }}\n  ok\n  {{ .Status | upperCase }}\n{{ end }}\n",
    )
    .unwrap();
    let cfg = dir.path().join("am.yml");
    let receiver = "route:\n  receiver: ops\nreceivers:\n  - name: ops\n    slack_configs:\n      - api_url: 'https://hooks.slack.test/services/T/B/X'\n";
    std::fs::write(&cfg, format!("templates: ['tmpl/*.tmpl']\n{receiver}")).unwrap();
    let out = bin().arg("check-config").arg(&cfg).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:3:16: function \"upperCase\" not defined",
            bad.display()
        )),
        "{stdout}"
    );
    // A syntax error inside a field: the field's path, then line:column within it.
    std::fs::write(
        &cfg,
        format!("{receiver}        title: '{{{{ template \"slack.default.title\" . }}}}'\n        text: 'a {{{{ if .Status }}}}'\n"),
    )
    .unwrap();
    let out = bin().arg("check-config").arg(&cfg).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("slack_configs[0]") && stdout.contains("template: :1:"),
        "{stdout}"
    );
    // Fixed, the same receiver passes; with `template_language: jinja` Go syntax fails.
    let good = format!("{receiver}        title: '{{{{ template \"slack.default.title\" . }}}}'\n        text: '{{{{ range .Alerts }}}}{{{{ .Annotations.summary }}}}{{{{ end }}}}'\n");
    std::fs::write(&cfg, &good).unwrap();
    let out = bin().arg("check-config").arg(&cfg).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(&cfg, format!("template_language: jinja\n{good}")).unwrap();
    let out = bin().arg("check-config").arg(&cfg).output().unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
