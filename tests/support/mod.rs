//! Test support: the fake upstream and an in-process gateway on port 0.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods
)]

pub mod fake_anthropic;
pub mod fake_openai;
pub mod pg;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tollgate::gateway::{Gateway, Options};

pub const KEY: &str = "tg_test_key_full_access";
pub const LIMITED_KEY: &str = "tg_test_key_limited";

pub fn hash(key: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// A policy with two upstreams: `primary` (gpt-4 → gpt-3.5-turbo) and
/// `backup`, and two keys.
pub fn policy(primary: &str, backup: &str, timeout: &str) -> String {
    format!(
        r#"
version: 1
ledger: none
server: {{ max_body: 64KiB, metrics: open }}
providers:
  primary: {{ kind: openai, base_url: "{primary}", api_key: upstream-secret, timeout: {timeout} }}
  backup: {{ kind: openai, base_url: "{backup}", api_key: upstream-secret, timeout: 2s }}
models:
  gpt-4: {{ provider: primary, upstream_model: gpt-4-0613, price: {{ input: 30, output: 60 }} }}
  gpt-3.5-turbo: {{ provider: primary, price: {{ input: 1.5, output: 2 }} }}
  backup-model: {{ provider: backup, price: {{ input: 0.5, output: 1 }} }}
aliases: {{ auto: router }}
routes:
  - name: main
    when: {{ model: [auto, gpt-4] }}
    to: gpt-4
    fallback: [gpt-3.5-turbo, backup-model]
keys:
  - {{ id: full, team: core, hash: "{}" }}
  - {{ id: limited, team: web, hash: "{}", models: [gpt-3.5-turbo] }}
retry: {{ max_attempts: 3, backoff: 5ms }}
"#,
        hash(KEY),
        hash(LIMITED_KEY)
    )
}

/// Starts a gateway for `yaml` on 127.0.0.1:0.
pub async fn start(yaml: &str) -> SocketAddr {
    let policy = tollgate::policy::load_str("test.yaml", yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    serve(Arc::new(Gateway::new(policy, &Options::default()).unwrap())).await
}

/// Serves `gw` on 127.0.0.1:0.
pub async fn serve(gw: Arc<Gateway>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, tollgate::server::app(gw))
            .await
            .unwrap();
    });
    addr
}

/// Splits an SSE body into its `data:` payloads.
pub fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

/// A complete stream: its JSON chunks (after checking `[DONE]` comes
/// last) and the content they carry, joined.
pub fn sse_chunks(body: &str) -> (Vec<serde_json::Value>, String) {
    let events = sse_events(body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let content = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    (chunks, content)
}

/// Runs the built binary's `serve` on a free port with `policy`; returns
/// the child and the URL it printed.
pub fn spawn_serve(bin: &str, policy: &Path) -> (std::process::Child, String) {
    spawn_serve_logged(bin, policy, std::process::Stdio::null())
}

/// `spawn_serve`, with the gateway's log (stderr) going to `log`.
pub fn spawn_serve_logged(
    bin: &str,
    policy: &Path,
    log: impl Into<std::process::Stdio>,
) -> (std::process::Child, String) {
    spawn_serve_with(bin, policy, log, &[])
}

/// `spawn_serve_logged` with extra `serve` arguments.
pub fn spawn_serve_with(
    bin: &str,
    policy: &Path,
    log: impl Into<std::process::Stdio>,
    extra: &[&str],
) -> (std::process::Child, String) {
    spawn_serve_env(bin, policy, log, extra, &[])
}

/// `spawn_serve_with`, with extra environment variables.
pub fn spawn_serve_env(
    bin: &str,
    policy: &Path,
    log: impl Into<std::process::Stdio>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    spawn_serve_setting(bin, policy, log, extra, |c| {
        c.envs(env.iter().copied());
    })
}

/// `spawn_serve_with`, with the command set up by `setup` first (its
/// environment, say).
pub fn spawn_serve_setting(
    bin: &str,
    policy: &Path,
    log: impl Into<std::process::Stdio>,
    extra: &[&str],
    setup: impl FnOnce(&mut std::process::Command),
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut command = Command::new(bin);
    setup(&mut command);
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--allow-anonymous"])
        .args(extra)
        .arg("--config")
        .arg(policy)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("tollgate listening on ")
        .unwrap()
        .to_string();
    (child, url)
}

/// A throwaway redis-server on a free port, killed on drop.
pub struct RedisServer {
    pub port: u16,
    args: Vec<String>,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// With extra `redis-server` arguments.
    pub fn start_with(args: &[&str]) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args = args.iter().map(|a| a.to_string()).collect();
        let mut r = RedisServer {
            port,
            args,
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again) on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed for these tests");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two fake upstreams, a SQLite ledger in a temp dir, and a gateway
/// serving the policy `yaml` writes for them: `yaml(primary_url,
/// backup_url, ledger_path)`.
pub struct Stack {
    pub url: String,
    pub gw: Arc<Gateway>,
    pub primary: fake_openai::Fake,
    pub backup: fake_openai::Fake,
    pub ledger: String,
    _dir: tempfile::TempDir,
}

pub async fn stack(yaml: impl FnOnce(&str, &str, &str) -> String) -> Stack {
    let primary = fake_openai::Fake::start().await;
    let backup = fake_openai::Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let text = yaml(&primary.base_url(), &backup.base_url(), &ledger);
    let p = tollgate::policy::load_str("stack.yaml", &text, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = Arc::new(Gateway::new(p, &Options::default()).unwrap());
    verified(&gw);
    let url = format!("http://{}", serve(gw.clone()).await);
    Stack {
        url,
        gw,
        primary,
        backup,
        ledger,
        _dir: dir,
    }
}

impl Stack {
    /// `POST path` with `key` and a JSON body.
    pub async fn post(&self, path: &str, key: &str, body: &serde_json::Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `GET path` with `key`.
    pub async fn get_with(&self, path: &str, key: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// The ledger's rows (once written), as `sql` selects six columns.
    pub fn rows<A, B, C, D, E, F>(&self, columns: &str) -> Vec<(A, B, C, D, E, F)>
    where
        A: rusqlite::types::FromSql,
        B: rusqlite::types::FromSql,
        C: rusqlite::types::FromSql,
        D: rusqlite::types::FromSql,
        E: rusqlite::types::FromSql,
        F: rusqlite::types::FromSql,
    {
        let ledger = self.gw.ledger.as_ref().unwrap();
        assert!(ledger.flush(std::time::Duration::from_secs(5)));
        let conn = rusqlite::Connection::open(&self.ledger).unwrap();
        let sql = format!("SELECT {columns} FROM tollgate_ledger ORDER BY ts, rowid");
        let mut stmt = conn.prepare(&sql).unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }
}

/// As if settlements had already verified every model's prompt count
/// (`state::bounds`: billed as counted, `VERIFY_AFTER` seen), for tests of
/// what reservations do afterwards; `tests/overspend.rs` covers before.
pub fn verified(gw: &Gateway) {
    use tollgate::state::bounds::{Learnt, Shape, VERIFY_AFTER};
    for id in 0..gw.policy.models.len() {
        gw.bounds.merge(
            id,
            &Learnt {
                shape: Shape::Plain,
                prompt_milli: 1000,
                completion_milli: 0,
                settled: VERIFY_AFTER,
            },
        );
    }
}

/// The same kept in the SQLite ledger at `path`, for gateways about to
/// start on it: `(provider, upstream model)` pairs.
pub fn verified_ledger(path: &str, pairs: &[(&str, &str)]) {
    use tollgate::state::bounds::{Learnt, Shape, VERIFY_AFTER};
    let target = tollgate::policy::LedgerTarget::Sqlite(path.to_string());
    let mut store = tollgate::ledger::open(&target).unwrap().unwrap();
    let taught: Vec<_> = pairs
        .iter()
        .map(|(provider, model)| tollgate::ledger::learnt::Taught {
            provider: provider.to_string(),
            model: model.to_string(),
            learnt: Learnt {
                shape: Shape::Plain,
                prompt_milli: 1000,
                completion_milli: 0,
                settled: VERIFY_AFTER,
            },
        })
        .collect();
    store.teach(&taught).unwrap();
}
