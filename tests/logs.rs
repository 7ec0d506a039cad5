//! The logs of a full run: structured JSON, one object per line, with the
//! request id on every request's lines, and never a prompt, a gateway key
//! or an upstream key, whatever happened to the request.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::fake_openai::{Behavior, Fake};
use support::hash;

const KEY: &str = "tg_logs_KEY-CANARY-51c2";
const PROMPT: &str = "PROMPT-CANARY-7f3a please summarize";
const UPSTREAM_KEY: &str = "upstream-secret";

#[test]
fn logs_are_json_with_request_ids_and_never_prompts_or_keys() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(Fake::start());
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\nledger: \"sqlite:{}\"\nproviders:\n  up: {{ kind: openai, base_url: \"{}\", api_key: {UPSTREAM_KEY} }}\n\
             models:\n  gpt-4: {{ provider: up }}\n  gpt-3.5-turbo: {{ provider: up }}\naliases: {{ auto: router }}\n\
             routes:\n  - {{ name: main, to: gpt-4, fallback: [gpt-3.5-turbo] }}\n\
             keys:\n  - {{ id: app, team: web, hash: \"{}\" }}\nretry: {{ max_attempts: 2, backoff: 1ms }}\n",
            dir.path().join("l.sqlite").display(),
            up.base_url(),
            hash(KEY)
        ),
    )
    .unwrap();
    let log_path = dir.path().join("stderr.log");
    let (mut child, url) = support::spawn_serve_with(
        env!("CARGO_BIN_EXE_tollgate"),
        &policy,
        std::fs::File::create(&log_path).unwrap(),
        &["--log-format", "json"],
    );
    rt.block_on(async {
        let c = reqwest::Client::new();
        let post = |key: &'static str, body: Value| {
            c.post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&body)
                .send()
        };
        let ask = json!({"model": "auto", "messages": [{"role": "user", "content": PROMPT}]});
        // An answer, a stream, a fallback after a 500, total failure, a bad
        // key, an unknown model, malformed JSON.
        assert_eq!(post(KEY, ask.clone()).await.unwrap().status(), 200);
        let mut stream = ask.clone();
        stream["stream"] = json!(true);
        post(KEY, stream).await.unwrap().text().await.unwrap();
        up.script([Behavior::Status(500)]);
        assert_eq!(post(KEY, ask.clone()).await.unwrap().status(), 200);
        up.script([Behavior::Status(500), Behavior::Status(500)]);
        assert_eq!(post(KEY, ask.clone()).await.unwrap().status(), 502);
        assert_eq!(
            post("tg_WRONG-CANARY-99", ask.clone())
                .await
                .unwrap()
                .status(),
            401
        );
        let mut unknown = ask.clone();
        unknown["model"] = json!("gpt-9");
        assert_eq!(post(KEY, unknown).await.unwrap().status(), 404);
        let bad = c
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(format!("{{\"model\": \"auto\", \"messages\": \"{PROMPT}"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
    });
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    std::thread::sleep(Duration::from_millis(50));
    let log = std::fs::read_to_string(&log_path).unwrap();
    for secret in ["CANARY", KEY, UPSTREAM_KEY, "tg_WRONG"] {
        assert!(
            !log.contains(secret),
            "`{secret}` appears in the log:\n{log}"
        );
    }
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request finished")
        .collect();
    assert_eq!(
        finished.len(),
        6,
        "one line per authenticated chat request:\n{log}"
    );
    for l in &finished {
        let id = l["span"]["request_id"].as_str().unwrap_or("");
        assert!(id.starts_with("req_"), "no request id on {l}");
    }
    assert!(lines.iter().any(|l| l["fields"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("attempt failed"))));
}
