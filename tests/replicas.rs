//! Two `tollgate serve` processes sharing one throwaway redis-server:
//! rate limits, budgets and the cache hold across replicas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_openai::{Behavior, Fake};
use support::{hash, spawn_serve_env, RedisServer};

const KEY: &str = "tg_replica_key";
const ADMIN: &str = "tg_replica_admin";

struct Replicas {
    urls: [String; 2],
    children: Vec<std::process::Child>,
    ledgers: [std::path::PathBuf; 2],
    _dir: tempfile::TempDir,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(redis: &RedisServer, upstream: &str, extra: &str) -> Replicas {
    start_on(&redis.url(), upstream, extra, &[])
}

/// Two replicas whose `state:` is `state`, with `env` set for each.
fn start_on(state: &str, upstream: &str, extra: &str, env: &[(&str, &str)]) -> Replicas {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = Vec::new();
    let mut children = Vec::new();
    let mut ledgers = Vec::new();
    for i in 0..2 {
        let ledger = dir.path().join(format!("ledger-{i}.sqlite"));
        let policy = dir.path().join(format!("policy-{i}.yaml"));
        std::fs::write(
            &policy,
            format!(
                r#"version: 1
state: "{}"
ledger: "sqlite:{}"
providers:
  up: {{ kind: openai, base_url: "{upstream}", api_key: upstream-secret }}
models:
  gpt-4: {{ provider: up }}
keys:
  - {{ id: app, team: web, hash: "{}" }}
  - {{ id: ops, team: platform, hash: "{}", admin: true }}
{extra}
"#,
                state,
                ledger.display(),
                hash(KEY),
                hash(ADMIN)
            ),
        )
        .unwrap();
        // A deployment that has already seen gpt-4 billed as counted.
        support::verified_ledger(&ledger.display().to_string(), &[("up", "gpt-4")]);
        let bin = env!("CARGO_BIN_EXE_tollgate");
        let (child, url) = spawn_serve_env(bin, &policy, std::process::Stdio::null(), &[], env);
        urls.push(url);
        children.push(child);
        ledgers.push(ledger);
    }
    Replicas {
        urls: [urls[0].clone(), urls[1].clone()],
        children,
        ledgers: [ledgers[0].clone(), ledgers[1].clone()],
        _dir: dir,
    }
}

async fn post(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn hello() -> Value {
    json!({"model": "gpt-4", "max_tokens": 7, "messages": [{"role": "user", "content": "Say hello"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_holds_across_replicas() {
    let redis = RedisServer::start();
    let up = Fake::start().await;
    let r = start(
        &redis,
        &up.base_url(),
        "rate_limits:\n  - { scope: { key: \"*\" }, requests_per_minute: 60 }",
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..90 {
        let url = r.urls[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            post(&url, &hello()).await.status().as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => {}
            s => panic!("unexpected {s}"),
        }
    }
    // A burst of 60, refilled at one a second while the test ran.
    let refill = started.elapsed().as_secs() as usize;
    assert!(
        (60..=60 + refill).contains(&ok),
        "admitted {ok} in {refill}s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_holds_across_replicas() {
    let redis = RedisServer::start();
    let up = Fake::start().await;
    up.script(std::iter::repeat_n(
        Behavior::Delay(Duration::from_millis(10)),
        300,
    ));
    // Fits 30 worst cases ($0.00069 reserved, $0.0006 spent each).
    let mut r = start(
        &redis,
        &up.base_url(),
        "budgets:\n  - { scope: { team: web }, limit_usd: 0.0207, period: day }",
    );
    let mut tasks = Vec::new();
    for i in 0..300 {
        let url = r.urls[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            post(&url, &hello()).await.status().as_u16()
        }));
    }
    let mut ok = 0u64;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => {}
            s => panic!("unexpected {s}"),
        }
    }
    assert!(ok >= 30, "admitted {ok}");
    // The shared budget: never over the limit; both ledgers agree with it.
    let b: Value = reqwest::Client::new()
        .get(format!("{}/admin/budgets", r.urls[1]))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spent_usd = b["data"][0]["spent_usd"].as_str().unwrap().to_string();
    let spent = tollgate::money::Nanos::parse_usd(&spent_usd).unwrap().0;
    assert!(spent <= 20_700_000, "overspent: {spent}");
    assert_eq!(spent, ok * 600_000);
    // Each replica's ledger has its own rows; together, every request.
    // SIGTERM: each replica drains, flushes its ledger and exits 0.
    for c in &mut r.children {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        assert_eq!(c.wait().unwrap().code(), Some(0));
    }
    let mut total_rows = 0;
    let mut total_cost = 0;
    for (i, l) in r.ledgers.iter().enumerate() {
        let conn = rusqlite::Connection::open(l).unwrap();
        let (rows, cost): (i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(cost_nanos), 0) FROM tollgate_ledger",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert!(rows > 0, "replica {i} served nothing");
        total_rows += rows;
        total_cost += cost;
    }
    assert_eq!(total_rows, 300);
    assert_eq!(total_cost as u64, spent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cached_on_one_replica_is_a_hit_on_the_other() {
    let redis = RedisServer::start();
    let up = Fake::start().await;
    let r = start(&redis, &up.base_url(), "cache: { ttl: 10m }");
    let body = json!({"model": "gpt-4", "temperature": 0,
                      "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let a = post(&r.urls[0], &body).await;
    assert_eq!(a.headers()["x-tollgate-cache"], "miss");
    let a = a.bytes().await.unwrap();
    let mut hit = None;
    for _ in 0..50 {
        let b = post(&r.urls[1], &body).await;
        if b.headers()["x-tollgate-cache"] == "hit" {
            hit = Some(b.bytes().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hit.expect("replica B never saw A's answer"), a);
    assert!(up.hits() <= 2);
}

/// A redis-server speaking only TLS, with a certificate for `localhost`
/// signed by a throwaway CA, killed on drop; `ca` is the CA's PEM file,
/// for clients to trust.
struct TlsRedis {
    port: u16,
    ca: std::path::PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let ok = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl must be installed for this test");
    assert!(ok.success(), "openssl {args:?}");
}

impl TlsRedis {
    fn start(args: &[&str]) -> TlsRedis {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=tollgate test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "ext.cnf",
                "-out",
                "cert.pem",
            ],
        );
        let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed for these tests");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        TlsRedis {
            port,
            ca: d.join("ca.pem"),
            child,
            _dir: dir,
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn readyz(url: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(format!("{url}/readyz"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_a_budget_over_redis_tls_with_a_verified_certificate() {
    // An LRU Redis: it may evict budget keys, which /readyz must say.
    let redis = TlsRedis::start(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let up = Fake::start().await;
    let state = format!("rediss://localhost:{}/0", redis.port);
    let cert = redis.ca.display().to_string();
    // Fits 3 worst cases ($0.00069 reserved, $0.0006 spent each).
    let budget = "budgets:\n  - { scope: { team: web }, limit_usd: 0.00207, period: day }";
    let r = start_on(&state, &up.base_url(), budget, &[("SSL_CERT_FILE", &cert)]);
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(post(&r.urls[i % 2], &hello()).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "one budget, over TLS");
    let (status, body) = readyz(&r.urls[0]).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("ok")),
        "{body}"
    );
    let warned =
        body["warnings"].as_array().unwrap().iter().any(|w| {
            w["state"] == "redis" && w["warning"].as_str().unwrap().contains("allkeys-lru")
        });
    assert!(warned, "{body}");
    // Without the certificate among its roots, a replica refuses the server.
    let untrusted = start_on(
        &state,
        &up.base_url(),
        budget,
        &[("SSL_CERT_FILE", "/dev/null")],
    );
    let (status, body) = readyz(&untrusted.urls[0]).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (503, Some("unreachable")),
        "{body}"
    );
}
