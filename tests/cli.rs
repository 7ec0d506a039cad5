//! Black-box tests of the built binary.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

fn tollgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
}

/// A policy with gpt-4 and gpt-3.5-turbo behind `auto`; routes follow.
const TWO_MODELS: &str = "version: 1\nproviders:\n  up: { kind: openai, api_key: k }\nmodels:\n  gpt-4: { provider: up, price: { input: 30, output: 60 } }\n  gpt-3.5-turbo: { provider: up, price: { input: 0.5, output: 1.5 } }\naliases: { auto: router }\nroutes:\n";

/// Runs `cmd`, which must succeed; its stdout and stderr.
fn succeeds(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// Writes `text` to `name` in `dir` and returns its path.
fn file_in(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn policy_check_prints_every_error_with_positions_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = file_in(
        &dir,
        "bad.yaml",
        "version: 1\nproviders:\n  up: { kind: opneai }\nmodels:\n  m: { provider: up, price: { input: 1, output: 1 } }\nroutes:\n  - { name: r, to: missing }\n",
    );
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
        &["classify", "--help"],
        &["route", "calibrate", "--help"],
        &["policy", "check", "--help"],
        &["policy", "test", "--help"],
        &["key", "new", "--help"],
        &["prices", "--help"],
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
    let policy = file_in(
        &dir,
        "p.yaml",
        "version: 1\nledger: none\nproviders:\n  up: { kind: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: k }\nmodels:\n  m: { provider: up, price: { input: 1, output: 1 } }\n",
    );
    let (mut child, url) = support::spawn_serve(env!("CARGO_BIN_EXE_tollgate"), &policy);
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
    let policy = file_in(
        &dir,
        "p.yaml",
        "version: 1\nproviders:\n  up: { kind: openai, api_key: \"${TOLLGATE_TEST_SURELY_UNSET}\" }\n",
    );
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

#[test]
fn policy_check_prints_unknown_keys_and_every_other_error_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let policy = file_in(
        &dir,
        "mixed.yaml",
        r#"version: 1
providers:
  up: { kind: openai, base_url: "http://127.0.0.1:1/v1", api_key: k, colour: blue }
models:
  a: { provider: nowhere, price: { input: -1, output: 2 } }
  b: { provider: up, price: { input: 1, output: 2 }, sise: 7 }
routes:
  - { name: r, to: ghost }
"#,
    );
    let out = tollgate()
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for wanted in [
        "providers.up.colour: unknown field `colour`",
        "models.b.sise: unknown field `sise`",
        "models.a.provider",
        "models.a.price",
        "routes[0].to",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
    }
    assert!(text.contains("ghost"), "{text}");
}

#[test]
fn offline_commands_need_no_secrets() {
    // The shipped policies name OPENAI_API_KEY without a default: checking
    // and comparing them needs no key, only a note that serve will.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tollgate()
        .args(["policy", "check"])
        .arg(root.join("policies/quality-first.yaml"))
        .arg(root.join("examples/vllm-and-openai.yaml"))
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("${OPENAI_API_KEY} is not set; read as empty here (serve needs it)"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let prompts = file_in(
        &dir,
        "p.jsonl",
        "{\"prompt\": \"Write a haiku about tea.\"}\n",
    );
    let out = tollgate()
        .args(["policy", "test"])
        .arg(root.join("policies/default.yaml"))
        .arg("--prompts")
        .arg(&prompts)
        .arg("--against")
        .arg(root.join("policies/quality-first.yaml"))
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The local model's cost is estimated, and marked as such.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("smollm2-135m") && stdout.contains("~0.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("~ estimated: a local model priced by the GPU hour"),
        "{stdout}"
    );
    // serve still refuses to start without it.
    let out = tollgate()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(root.join("policies/quality-first.yaml"))
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn classify_writes_one_line_per_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let policy = file_in(
        &dir,
        "p.yaml",
        &format!(
            "{TWO_MODELS}  - {{ name: code, when: {{ task: code }}, to: gpt-4 }}\n  - {{ name: default, to: gpt-3.5-turbo }}\n"
        ),
    );
    let mut child = tollgate()
        .args(["classify", "--jsonl", "-", "--policy"])
        .arg(&policy)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, r#"{{"id": 1, "prompt": "Write a Python function that merges two sorted lists.", "max_tokens": 100}}"#).unwrap();
        writeln!(
            stdin,
            r#"{{"id": "b", "messages": [{{"role": "user", "content": "Hello"}}]}}"#
        )
        .unwrap();
        writeln!(stdin, "not json").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad line makes the exit code 1"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3: not JSON"));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let code = &lines[0];
    for field in [
        "id",
        "task",
        "complexity",
        "strong_score",
        "prompt_tokens",
        "route",
        "model",
        "est_cost_usd",
    ] {
        assert!(code.get(field).is_some(), "missing {field}: {code}");
    }
    assert_eq!(
        (code["id"].as_i64(), code["task"].as_str()),
        (Some(1), Some("code"))
    );
    assert_eq!(
        (code["route"].as_str(), code["model"].as_str()),
        (Some("code"), Some("gpt-4"))
    );
    assert_eq!(code["prompt_tokens"], 17);
    // 17 prompt tokens at $30/M + 100 max tokens at $60/M = $0.00651.
    assert_eq!(code["est_cost_usd"], 0.00651);
    let hello = &lines[1];
    assert_eq!(
        (hello["id"].as_str(), hello["task"].as_str()),
        (Some("b"), Some("chat"))
    );
    assert_eq!(hello["model"], "gpt-3.5-turbo");
    assert_eq!(hello["prompt_tokens"], 8);
}

#[test]
fn classify_says_which_classifier_answered() {
    let learned = tollgate()
        .args(["classify", "Prove that there are infinitely many primes."])
        .output()
        .unwrap();
    assert!(learned.status.success());
    assert!(
        learned.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&learned.stderr)
    );
    let missing = tollgate()
        .args(["classify", "--router", "/nonexistent/router", "hi"])
        .output()
        .unwrap();
    assert!(missing.status.success());
    let note = String::from_utf8(missing.stderr).unwrap();
    assert!(
        note.contains("note: learned router not loaded: /nonexistent/router/tokenizer.json")
            && note.contains("the keyword classifier routes"),
        "{note}"
    );
    let off = tollgate()
        .args([
            "classify",
            "--router",
            "off",
            "Prove that there are infinitely many primes.",
        ])
        .output()
        .unwrap();
    assert!(off.stderr.is_empty());
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&learned.stdout).unwrap(),
        serde_json::from_slice(&off.stdout).unwrap(),
    );
    // The keyword classifier's scores are in hundredths; the router's differ.
    assert_ne!(a["strong_score"], b["strong_score"], "{a} {b}");
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("tokenizer.json"), "{}").unwrap();
    std::fs::write(broken.path().join("l2_supercat_256.safetensors"), "x").unwrap();
    let bad = tollgate()
        .args(["classify", "--router"])
        .arg(broken.path())
        .arg("hi")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("error: learned router: "),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn route_calibrate_prints_a_threshold_for_the_share() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        "hi",
        "thanks!",
        "Translate 'good night' into French.",
        "Why is the sky blue?",
        "Write a Python function that merges two sorted lists. It must run in O(n), must not \
         allocate more than one vector, and should include tests. First explain the plan, \
         then write the code, finally list 3 edge cases.",
        "Solve step by step: a train leaves at 3pm at 60 km/h; another at 4pm at 90 km/h. \
         When does the second catch up? Show the equation first, then the answer.",
    ];
    let body: String = lines
        .iter()
        .map(|p| serde_json::json!({"prompt": p}).to_string() + "\n")
        .collect();
    let prompts = file_in(&dir, "prompts.jsonl", &body);
    let out = tollgate()
        .args(["route", "calibrate", "--strong-share", "0.34", "--prompts"])
        .arg(&prompts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("strong_score: \">= "), "{stdout}");
    assert!(stdout.contains("sends 2 of 6 prompts"), "{stdout}");
    // Then the cost-quality curve: from the top prompt alone to all six,
    // the cost rising and the expected gap recovered reaching 100%.
    assert!(
        stdout.contains(
            "6 prompts; strong = gpt-4, weak = the weak model (counted as free); router: learned"
        ),
        "{stdout}"
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(">= "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.len() >= 3, "{stdout}");
    assert_eq!(rows[0][2], "16.7%", "{stdout}");
    let last = rows.last().unwrap();
    assert_eq!((last[2], last[4]), ("100.0%", "100.0%"), "{stdout}");
    let cost = |r: &Vec<&str>| r[3].parse::<f64>().unwrap();
    assert!(
        rows.windows(2).all(|w| cost(&w[0]) < cost(&w[1])),
        "{stdout}"
    );
    let bad = tollgate()
        .args(["route", "calibrate", "--strong-share", "0", "--prompts"])
        .arg(&prompts)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn policy_test_shows_routes_costs_and_the_difference_against_another_policy() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, routes: &str| file_in(&dir, name, &format!("{TWO_MODELS}{routes}"));
    let split = write("split.yaml", "  - { name: code, when: { task: code }, to: gpt-4 }\n  - { name: cheap, to: gpt-3.5-turbo }\n");
    let strong = write("strong.yaml", "  - { name: all, to: gpt-4 }\n");
    let prompts = file_in(
        &dir,
        "p.jsonl",
        "{\"id\": \"c\", \"prompt\": \"Write a Python function that merges two sorted lists.\", \"max_tokens\": 100}\n{\"id\": \"h\", \"prompt\": \"Hello\"}\n",
    );
    let out = tollgate()
        .args(["policy", "test"])
        .arg(&split)
        .arg("--prompts")
        .arg(&prompts)
        .arg("--against")
        .arg(&strong)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let row = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("c "), ["c", "code", "high", "code", "gpt-4", "0.00651"]);
    // "Hello": 8 prompt tokens at $0.5/M = $0.000004.
    assert_eq!(
        row("h "),
        ["h", "chat", "low", "cheap", "gpt-3.5-turbo", "0.000004"]
    );
    assert!(
        stdout.contains("h: gpt-4 -> gpt-3.5-turbo (0.00024 -> 0.000004 USD)"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("1 of 2 prompts change model; est. cost 0.00675 -> 0.006514 USD (-0.000236)"),
        "{stdout}"
    );
}

#[test]
fn prices_lists_the_dated_catalog_and_imports_litellms_format() {
    let (stdout, _) = succeeds(tollgate().args(["prices", "--format", "json"]));
    let entries: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for name in [
        "gpt-5",
        "gpt-4.1-mini",
        "o3",
        "o4-mini",
        "gpt-4o",
        "claude-sonnet-4-5",
    ] {
        let e = entries
            .iter()
            .find(|e| e["model"] == name)
            .unwrap_or_else(|| panic!("{name} is not listed"));
        assert!(e["cached_input_usd_per_mtok"].is_string(), "{e}");
        assert!(e["as_of"].as_str().unwrap().starts_with("202"), "{e}");
        assert!(!e["source"].as_str().unwrap().is_empty(), "{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let catalog = file_in(
        &dir,
        "model_prices_and_context_window.json",
        r#"{"sample_spec": {"input_cost_per_token": 0},
            "gpt-9": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.2e-05,
                      "cache_read_input_token_cost": 3e-07, "max_input_tokens": 500000,
                      "litellm_provider": "openai", "mode": "chat"},
            "dall-e-9": {"mode": "image_generation", "input_cost_per_image": 0.04}}"#,
    );
    let (stdout, stderr) = succeeds(tollgate().args(["prices", "import"]).arg(&catalog));
    assert!(
        stdout.contains("gpt-9") && stdout.contains("0.3"),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 entries priced per token, 1 skipped"),
        "{stderr}"
    );
    let sha = hex::encode(Sha256::digest(std::fs::read(&catalog).unwrap()));
    assert!(stderr.contains(&sha), "{stderr}");
    // A policy imports it, pinned; its own price wins over the catalog.
    let policy = file_in(
        &dir,
        "p.yaml",
        &format!(
            "version: 1\nprices: {{ file: model_prices_and_context_window.json, sha256: {sha} }}\nproviders:\n  up: {{ kind: openai, api_key: k }}\nmodels:\n  gpt-9: {{ provider: up }}\n  gpt-4.1: {{ provider: up, price: {{ input: 1, output: 2 }} }}\n  mystery: {{ provider: up }}\n"
        ),
    );
    let (stdout, _) = succeeds(
        tollgate()
            .args(["prices", "--format", "json", "--config"])
            .arg(&policy),
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let model = |name: &str| {
        lines
            .iter()
            .rev()
            .find(|e| e["model"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(model("gpt-9")["input_usd_per_mtok"], "3");
    assert_eq!(model("gpt-9")["context"], 500000);
    assert_eq!(model("gpt-4.1")["input_usd_per_mtok"], "1");
    assert_eq!(model("gpt-4.1")["source"], "policy");
    assert!(model("mystery")["source"]
        .as_str()
        .unwrap()
        .starts_with("UNPRICED"));
    // `policy check` accepts it and warns about the model without a price.
    let (_, stderr) = succeeds(tollgate().args(["policy", "check"]).arg(&policy));
    assert!(
        stderr.contains("warning: models.mystery: no known price"),
        "{stderr}"
    );
    // A changed file is refused by its pin; a bad entry is named.
    std::fs::write(&catalog, r#"{"gpt-9": {"input_cost_per_token": "3e-06"}}"#).unwrap();
    let fails = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr).unwrap()
    };
    assert!(fails(tollgate().args(["policy", "check"]).arg(&policy)).contains("SHA-256"));
    let stderr = fails(tollgate().args(["prices", "import"]).arg(&catalog));
    assert!(
        stderr.contains("`gpt-9`") && stderr.contains("input_cost_per_token"),
        "{stderr}"
    );
}
