//! Upstreams behind a proxy: one that the environment's `HTTP_PROXY`
//! covers is reached through the proxy, one that `NO_PROXY` exempts is
//! reached directly, and both answer in full.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use serde_json::{json, Value};
use support::fake_openai::{self, Fake};

#[test]
fn the_environments_proxy_carries_the_upstreams_it_covers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let recording = || {
        Fake::start_with(fake_openai::Options {
            record: true,
            ..fake_openai::Options::default()
        })
    };
    // A fake upstream serves as the proxy: it routes a request by its
    // path, so a request for another host sent to it as a proxy (the
    // absolute URL as its target) reaches its handler. `near` is another.
    let proxy_fake = rt.block_on(recording());
    let near = rt.block_on(recording());
    let proxy = proxy_fake.base_url().trim_end_matches("/v1").to_string();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    // `.invalid` never resolves: only the proxy can reach `far`.
    std::fs::write(
        &policy,
        format!(
            "version: 1\nproviders:\n\
             \x20 far: {{ kind: openai, base_url: \"http://upstream.invalid/v1\", api_key: upstream-secret }}\n\
             \x20 near: {{ kind: openai, base_url: \"{}\", api_key: upstream-secret }}\n\
             models:\n  gpt-4: {{ provider: far }}\n  gpt-3.5-turbo: {{ provider: near }}\n",
            near.base_url()
        ),
    )
    .unwrap();
    let (mut child, url) = support::spawn_serve_setting(
        env!("CARGO_BIN_EXE_tollgate"),
        &policy,
        std::process::Stdio::null(),
        &[],
        |c| {
            for v in [
                "http_proxy",
                "https_proxy",
                "all_proxy",
                "ALL_PROXY",
                "no_proxy",
            ] {
                c.env_remove(v);
            }
            c.env("HTTP_PROXY", &proxy).env("NO_PROXY", "127.0.0.1");
        },
    );
    let answers: Vec<(u16, Value)> = rt.block_on(async {
        let c = reqwest::Client::new();
        let mut answers = Vec::new();
        for (model, stream) in [("gpt-4", false), ("gpt-4", true), ("gpt-3.5-turbo", false)] {
            let body = json!({"model": model, "stream": stream,
                "messages": [{"role": "user", "content": "Say hello."}]});
            let r = c
                .post(format!("{url}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            let v = if stream {
                Value::String(text)
            } else {
                serde_json::from_str(&text).unwrap()
            };
            answers.push((status, v));
        }
        answers
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(answers[0].1["model"], "gpt-4");
    let stream = answers[1].1.as_str().unwrap();
    assert!(stream.contains("\"model\":\"gpt-4\""), "{stream}");
    assert!(stream.trim_end().ends_with("data: [DONE]"), "{stream}");
    assert_eq!(answers[2].1["model"], "gpt-3.5-turbo");
    // The proxy saw the requests for `far`, which name its host; `near`
    // (in NO_PROXY) got its own straight.
    let hosts = |f: &Fake| -> Vec<String> {
        f.requests()
            .iter()
            .map(|r| r.headers["host"].to_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(hosts(&proxy_fake), ["upstream.invalid", "upstream.invalid"]);
    assert_eq!(hosts(&near).len(), 1);
}
