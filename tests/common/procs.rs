//! Servers run as separate processes: the real Alertmanager 0.25 (Debian's
//! `prometheus-alertmanager`) and the router binary, each on a free loopback port.

use super::{free_port, full_config, wait_for, wait_ready};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const AM_BIN: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager, killed when dropped.
pub struct Am {
    pub child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
}

/// Gossip settings of one replica of an Alertmanager cluster on loopback
/// (see [`Am::start_clustered`]).
pub struct AmCluster {
    /// Its `--cluster.listen-address` (and advertised) port on 127.0.0.1, TCP and UDP.
    pub port: u16,
    /// The cluster ports of the other replicas (`--cluster.peer`).
    pub peers: Vec<u16>,
    /// `--cluster.peer-timeout`: how long the replica at position `n` waits, times `n`,
    /// before it checks the notification log and sends (Alertmanager's default is 15s).
    pub peer_timeout: &'static str,
}

impl Drop for Am {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Am {
    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// Start Alertmanager with `config` (alertmanager.yml) and its own storage, gossip
    /// disabled; returns once `/-/ready` answers. Panics (never skips) when the binary is
    /// missing.
    pub async fn start(config: &str) -> Am {
        Am::start_with(config, None).await
    }

    /// Start one replica of a gossip cluster on loopback: like [`Am::start`], with the
    /// cluster listening on `cluster.port`, joining `cluster.peers`, and gossiping fast
    /// (50ms gossip, 1s push-pull) so that a test's cluster settles and converges in about
    /// a second. Returns once `/-/ready` answers; see [`Am::wait_cluster`] for the peers.
    pub async fn start_clustered(config: &str, cluster: &AmCluster) -> Am {
        Am::start_with(config, Some(cluster)).await
    }

    /// Wait until this replica's `/api/v2/status` reports the cluster `ready` (settled)
    /// with `peers` members.
    pub async fn wait_cluster(&self, peers: usize) {
        let client = reqwest::Client::new();
        let url = format!("{}/api/v2/status", self.base);
        wait_for(
            Duration::from_secs(30),
            "alertmanager cluster ready",
            || {
                let req = client.get(&url).send();
                async move {
                    let status: serde_json::Value = req.await.ok()?.json().await.ok()?;
                    let cluster = &status["cluster"];
                    (cluster["status"] == "ready"
                        && cluster["peers"].as_array().map(Vec::len) == Some(peers))
                    .then_some(())
                }
            },
        )
        .await;
    }

    /// `POST /api/v2/alerts` (as Prometheus sends them); panics unless it answers 200.
    pub async fn post_alerts(&self, alerts: &serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.base))
            .json(alerts)
            .send()
            .await
            .expect("post to alertmanager");
        assert_eq!(r.status(), 200, "alertmanager refused the alerts");
    }

    /// `kill -9`, as a crashed node or an OOM kill would stop it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn start_with(config: &str, cluster: Option<&AmCluster>) -> Am {
        assert!(
            std::path::Path::new(AM_BIN).exists(),
            "{AM_BIN} is missing: install Debian's prometheus-alertmanager (.ci/run does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(&cfg, config).expect("write alertmanager.yml");
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log file");
        let port = free_port();
        let cluster_args: Vec<String> = match cluster {
            None => vec!["--cluster.listen-address=".into()],
            Some(c) => [
                format!("--cluster.listen-address=127.0.0.1:{}", c.port),
                format!("--cluster.advertise-address=127.0.0.1:{}", c.port),
                "--cluster.gossip-interval=50ms".into(),
                "--cluster.pushpull-interval=1s".into(),
                format!("--cluster.peer-timeout={}", c.peer_timeout),
            ]
            .into_iter()
            .chain(
                c.peers
                    .iter()
                    .map(|p| format!("--cluster.peer=127.0.0.1:{p}")),
            )
            .collect(),
        };
        let child = Command::new(AM_BIN)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(&cluster_args)
            .arg("--log.level=info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start alertmanager");
        let mut am = Am {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!(
                    "alertmanager exited during start-up ({status}); its log:\n{}",
                    am.log()
                );
            }
            let ready = client
                .get(format!("{}/-/ready", am.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return am;
            }
            if Instant::now() > deadline {
                panic!("alertmanager not ready after 30s; its log:\n{}", am.log());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The router binary as a separate process, killed when dropped.
pub struct RouterProc {
    pub child: Child,
    pub base: String,
    /// Set when the process owns its directory (see [`RouterProc::start`]).
    pub dir: Option<tempfile::TempDir>,
}

impl RouterProc {
    /// Run the binary with `config` (which listens on `port`); returns once `/-/ready`
    /// answers.
    pub async fn spawn(config: &std::path::Path, port: u16) -> RouterProc {
        RouterProc::spawn_logging(config, port, "warn").await
    }

    /// [`RouterProc::spawn`] with another `--log-level`.
    pub async fn spawn_logging(config: &std::path::Path, port: u16, level: &str) -> RouterProc {
        RouterProc::spawn_with(config, port, level, Stdio::inherit()).await
    }

    /// [`RouterProc::spawn_logging`] appending its log (stderr) to `log`, a file kept
    /// across restarts.
    pub async fn spawn_log_file(
        config: &std::path::Path,
        port: u16,
        level: &str,
        log: &std::path::Path,
    ) -> RouterProc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open router log");
        RouterProc::spawn_with(config, port, level, Stdio::from(file)).await
    }

    async fn spawn_with(
        config: &std::path::Path,
        port: u16,
        level: &str,
        stderr: Stdio,
    ) -> RouterProc {
        let child = Command::new(env!("CARGO_BIN_EXE_alert-router"))
            .arg("--config")
            .arg(config)
            .arg("--log-level")
            .arg(level)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn alert-router");
        let base = format!("http://127.0.0.1:{port}");
        let p = RouterProc {
            child,
            base,
            dir: None,
        };
        wait_ready(&p.base, "router ready").await;
        p
    }

    /// Run the binary on `yaml` (without `listen`/`storage`, see [`full_config`]) in a
    /// directory and on a port of its own, logging errors only (tests with receivers
    /// that cannot be reached).
    pub async fn start(yaml: &str) -> RouterProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let cfg = dir.path().join("alert-router.yml");
        std::fs::write(
            &cfg,
            full_config(dir.path(), yaml, &format!("127.0.0.1:{port}")),
        )
        .expect("write config");
        let mut p = RouterProc::spawn_logging(&cfg, port, "error").await;
        p.dir = Some(dir);
        p
    }

    /// `kill -9`, and wait until the process is gone.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success());
        let status = wait_for(Duration::from_secs(20), "exit after SIGTERM", || {
            let s = self.child.try_wait().expect("try_wait");
            async move { s }
        })
        .await;
        assert!(status.success(), "exit status {status:?}");
    }
}

impl Drop for RouterProc {
    fn drop(&mut self) {
        // never leave a router behind when a test fails
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
