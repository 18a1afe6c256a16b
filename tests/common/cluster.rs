//! Real Redis Clusters and real crossgate replicas (child processes of the built binary), for
//! the scale-out tests and the cluster load command.

use std::collections::HashSet;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port whose cluster bus port (port + 10000) is free too; below 55000 as the machine asks.
pub fn cluster_port(taken: &mut HashSet<u16>) -> u16 {
    loop {
        let p: u16 = 20_000 + (rand::random::<u16>() % 24_000);
        if taken.contains(&p) {
            continue;
        }
        if StdListener::bind(("127.0.0.1", p)).is_ok()
            && StdListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        {
            taken.insert(p);
            return p;
        }
    }
}

/// One redis-server of a cluster, with AOF (`appendfsync always`) in its own directory.
pub struct ClusterNode {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl ClusterNode {
    pub fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", "2000"])
            .args(["--cluster-require-full-coverage", "no"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.query(&["PING"]).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("cluster node {} did not start", self.port);
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A command on this node alone (`None` when it does not answer).
    pub fn query(&self, args: &[&str]) -> Option<redis::Value> {
        let client = redis::Client::open(self.url().as_str()).ok()?;
        let mut c = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c).ok()
    }

    fn info(&self, section: &str) -> String {
        match self.query(&["INFO", section]) {
            Some(v) => redis::from_redis_value::<String>(v).unwrap_or_default(),
            None => String::new(),
        }
    }

    pub fn role(&self) -> Option<String> {
        let info = self.info("replication");
        info.lines()
            .find_map(|l| l.strip_prefix("role:"))
            .map(|r| r.trim().to_string())
    }

    fn cluster_ok(&self) -> bool {
        match self.query(&["CLUSTER", "INFO"]) {
            Some(v) => redis::from_redis_value::<String>(v)
                .unwrap_or_default()
                .contains("cluster_state:ok"),
            None => false,
        }
    }

    /// A replica whose link to its master is up.
    fn replica_in_sync(&self) -> bool {
        let info = self.info("replication");
        info.contains("role:slave") && info.contains("master_link_status:up")
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of 3 masters and 3 replicas on free ports.
pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let mut taken = HashSet::new();
        let mut nodes: Vec<ClusterNode> = (0..6)
            .map(|_| ClusterNode {
                port: cluster_port(&mut taken),
                dir: tempfile::tempdir().unwrap(),
                child: None,
            })
            .collect();
        for n in &mut nodes {
            n.launch();
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("redis-cli must be installed");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(ClusterNode::url).collect()
    }

    /// Every node up, the cluster state ok on each, every replica linked to its master.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let ok = self.nodes.iter().all(|n| {
                n.is_running()
                    && n.cluster_ok()
                    && match n.role().as_deref() {
                        Some("master") => true,
                        Some("slave") => n.replica_in_sync(),
                        _ => false,
                    }
            });
            let masters = self
                .nodes
                .iter()
                .filter(|n| n.role().as_deref() == Some("master"))
                .count();
            if ok && masters == 3 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster did not become healthy");
    }

    /// The index of the node that is master of `key`'s slot now.
    pub fn master_of(&self, key: &str) -> usize {
        let any = self.nodes.iter().find(|n| n.is_running()).unwrap();
        let slot: i64 =
            redis::from_redis_value(any.query(&["CLUSTER", "KEYSLOT", key]).unwrap()).unwrap();
        let slots = any.query(&["CLUSTER", "SLOTS"]).unwrap();
        let redis::Value::Array(ranges) = slots else {
            panic!("CLUSTER SLOTS")
        };
        for r in ranges {
            let redis::Value::Array(parts) = r else {
                continue;
            };
            let (redis::Value::Int(a), redis::Value::Int(b)) = (&parts[0], &parts[1]) else {
                continue;
            };
            if (*a..=*b).contains(&slot) {
                let redis::Value::Array(m) = &parts[2] else {
                    panic!("master")
                };
                let redis::Value::Int(port) = m[1] else {
                    panic!("port")
                };
                return self
                    .nodes
                    .iter()
                    .position(|n| i64::from(n.port) == port)
                    .unwrap();
            }
        }
        panic!("slot {slot} has no master");
    }

    /// Kills the master of `key`'s slot, waits until its replica has been promoted, then
    /// restarts the old master (it rejoins as a replica) and waits for a healthy cluster.
    /// Returns how long the slot had no master that took writes.
    pub fn fail_over(&mut self, key: &str) -> Duration {
        let old = self.master_of(key);
        let started = Instant::now();
        self.nodes[old].kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no replica was promoted");
            std::thread::sleep(Duration::from_millis(100));
            let promoted = self.master_of(key);
            if promoted != old && self.nodes[promoted].role().as_deref() == Some("master") {
                break;
            }
        }
        let gap = started.elapsed();
        self.nodes[old].launch();
        self.wait_healthy(Duration::from_secs(60));
        gap
    }
}

/// A crossgate daemon run as a child process (so it can be killed with SIGKILL).
pub struct Replica {
    pub port: u16,
    pub config: PathBuf,
    child: Option<Child>,
}

impl Replica {
    /// Writes `config_text` (with `{port}` replaced by a free port) into `dir` and starts it.
    pub fn start(dir: &Path, name: &str, config_text: &str, env: &[(String, String)]) -> Replica {
        let port = super::free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text.replace("{port}", &port.to_string())).unwrap();
        let mut r = Replica {
            port,
            config,
            child: None,
        };
        r.launch(env);
        r
    }

    pub fn launch(&mut self, env: &[(String, String)]) {
        let child = Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn wait_ready(&self, c: &reqwest::Client, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(r) = c.get(format!("{}/readyz", self.base())).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("replica on {} did not become ready", self.port);
    }

    /// The value of a metric line that starts with `prefix` in `/metrics`.
    pub async fn metric(&self, c: &reqwest::Client, prefix: &str) -> Option<f64> {
        let text = c
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}
