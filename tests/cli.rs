//! Black-box tests of the built binary.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

fn tollgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
}

#[test]
fn policy_check_prints_every_error_with_positions_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nproviders:\n  up: { kind: opneai }\nmodels:\n  m: { provider: up, price: { input: 1, output: 1 } }\nroutes:\n  - { name: r, to: missing }\n",
    )
    .unwrap();
    let out = tollgate()
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let b = bad.display();
    assert!(stderr.contains(&format!("{b}:3:")), "{stderr}");
    assert!(
        stderr.contains("providers.up.kind: unknown provider kind `opneai`"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{b}:7:")), "{stderr}");
    assert!(
        stderr.contains("routes[0].to: unknown model `missing`"),
        "{stderr}"
    );
}

#[test]
fn policy_check_accepts_the_shipped_default() {
    let out = tollgate()
        .args(["policy", "check", "policies/default.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("policies/default.yaml: ok"));
}

#[test]
fn key_new_prints_a_key_and_its_hash() {
    let out = tollgate()
        .args(["key", "new", "--id", "web-prod", "--team", "web"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key:  "))
        .unwrap();
    let hash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("hash: "))
        .unwrap();
    assert!(key.starts_with("tg_") && key.len() > 40);
    assert_eq!(
        hash,
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    );
    let again = tollgate()
        .args(["key", "new", "--id", "a", "--team", "b"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8(again.stdout).unwrap().contains(key),
        "keys are random"
    );
}

#[test]
fn every_command_explains_itself() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["policy", "check", "--help"],
        &["key", "new", "--help"],
    ] {
        let out = tollgate().args(args).output().unwrap();
        assert!(out.status.success());
        assert!(
            String::from_utf8(out.stdout).unwrap().contains("Example"),
            "{args:?}"
        );
    }
}

#[test]
fn serve_starts_on_a_free_port_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "version: 1\nproviders:\n  up: { kind: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: k }\nmodels:\n  m: { provider: up, price: { input: 1, output: 1 } }\n",
    )
    .unwrap();
    let mut child = tollgate()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-anonymous",
            "--config",
        ])
        .arg(&policy)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (health, models) = rt.block_on(async {
        let h = reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status();
        let m: serde_json::Value = reqwest::get(format!("{url}/v1/models"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (h, m)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(health, 200);
    assert_eq!(models["data"][0]["id"], "m");
}

#[test]
fn serve_refuses_a_missing_env_variable_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "version: 1\nproviders:\n  up: { kind: openai, api_key: \"${TOLLGATE_TEST_SURELY_UNSET}\" }\n",
    )
    .unwrap();
    let out = tollgate()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&policy)
        .env_remove("TOLLGATE_TEST_SURELY_UNSET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("environment variable TOLLGATE_TEST_SURELY_UNSET is not set"),
        "{stderr}"
    );
}
