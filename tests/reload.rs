//! Policy hot reload: a valid policy is swapped in atomically and keeps
//! counters, budgets and the ledger; an invalid one is refused and the
//! running policy stays. In process, and through SIGHUP on the binary.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_openai::Fake;
use support::hash;
use tollgate::gateway::{Gateway, Options};
use tollgate::server::{app_live, reload_policy, Live};

const KEY: &str = "tg_reload_key";
const ADMIN: &str = "tg_reload_admin";

fn policy(up: &str, ledger: &Path, target: &str) -> String {
    format!(
        r#"version: 1
ledger: "sqlite:{}"
providers:
  up: {{ kind: openai, base_url: "{up}", api_key: upstream-secret }}
models:
  gpt-4: {{ provider: up }}
  gpt-3.5-turbo: {{ provider: up }}
aliases: {{ auto: router }}
routes:
  - {{ name: main, to: {target} }}
keys:
  - {{ id: app, team: web, hash: "{}" }}
  - {{ id: ops, team: platform, hash: "{}", admin: true }}
budgets:
  - {{ scope: {{ team: web }}, limit_usd: 10, period: month }}
"#,
        ledger.display(),
        hash(KEY),
        hash(ADMIN)
    )
}

async fn ask(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "auto", "max_tokens": 7,
                      "messages": [{"role": "user", "content": "Say hello"}]}))
        .send()
        .await
        .unwrap()
}

async fn admin(url: &str, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reload_swaps_the_policy_and_keeps_the_state() {
    let up = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy(&up.base_url(), &ledger, "gpt-4")).unwrap();
    let p = tollgate::policy::load_file(&file).unwrap();
    let live = Arc::new(Live::new(Arc::new(
        Gateway::new(p, &Options::default()).unwrap(),
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = app_live(live.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    assert_eq!(ask(&url).await.headers()["x-tollgate-model"], "gpt-4");

    // Valid: the route now goes to gpt-3.5-turbo.
    std::fs::write(&file, policy(&up.base_url(), &ledger, "gpt-3.5-turbo")).unwrap();
    reload_policy(&live, &file).await.unwrap();
    assert_eq!(
        ask(&url).await.headers()["x-tollgate-model"],
        "gpt-3.5-turbo"
    );

    // Counters and the budget carried over: both requests are counted and
    // the budget has spent both ($0.0006 on gpt-4 + $0.0000135 on gpt-3.5).
    let metrics = admin(&url, "/metrics").await;
    assert!(
        metrics
            .contains("tollgate_requests_total{route=\"main\",model=\"gpt-4\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "tollgate_requests_total{route=\"main\",model=\"gpt-3.5-turbo\",status=\"200\"} 1"
    ));
    let budgets: Value = serde_json::from_str(&admin(&url, "/admin/budgets").await).unwrap();
    assert_eq!(budgets["data"][0]["spent_usd"], "0.0006135");

    // Invalid: refused with every error; the running policy stays.
    std::fs::write(
        &file,
        policy(&up.base_url(), &ledger, "gpt-5").replace("limit_usd: 10", "limit_usd: -1"),
    )
    .unwrap();
    let err = reload_policy(&live, &file).await.unwrap_err();
    assert!(
        err.contains("routes[0].to") && err.contains("gpt-5"),
        "{err}"
    );
    assert!(err.contains("budgets[0].limit_usd"), "{err}");
    assert_eq!(
        ask(&url).await.headers()["x-tollgate-model"],
        "gpt-3.5-turbo"
    );
    // Changing where the ledger goes needs a restart.
    std::fs::write(
        &file,
        policy(&up.base_url(), &dir.path().join("other.sqlite"), "gpt-4"),
    )
    .unwrap();
    assert!(reload_policy(&live, &file)
        .await
        .unwrap_err()
        .contains("ledger"));
    assert_eq!(
        ask(&url).await.headers()["x-tollgate-model"],
        "gpt-3.5-turbo"
    );
}

#[test]
fn sighup_reloads_the_binary_and_a_bad_file_is_logged_and_ignored() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(Fake::start());
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy(&up.base_url(), &ledger, "gpt-4")).unwrap();
    let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let (mut child, url) = support::spawn_serve_logged(env!("CARGO_BIN_EXE_tollgate"), &file, log);
    let hup = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    rt.block_on(async {
        assert_eq!(ask(&url).await.headers()["x-tollgate-model"], "gpt-4");
        std::fs::write(&file, policy(&up.base_url(), &ledger, "gpt-3.5-turbo")).unwrap();
        assert!(hup(child.id()).success());
        let mut switched = false;
        for _ in 0..50 {
            if ask(&url).await.headers()["x-tollgate-model"] == "gpt-3.5-turbo" {
                switched = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(switched, "SIGHUP did not reload the policy");
        std::fs::write(&file, "version: 1\nmodels: [").unwrap();
        assert!(hup(child.id()).success());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            ask(&url).await.headers()["x-tollgate-model"],
            "gpt-3.5-turbo"
        );
    });
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(stderr.contains("policy reloaded"), "{stderr}");
    assert!(stderr.contains("policy reload rejected"), "{stderr}");
    assert!(stderr.contains("still serving with the previous policy"));
    assert!(
        !stderr.contains(KEY) && !stderr.contains("Say hello"),
        "no key or prompt in logs"
    );
}
