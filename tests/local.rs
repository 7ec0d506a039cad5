//! The embedded engine, end to end: the real SmolLM2-135M GGUF served by
//! mistralrs inside the gateway (fetch it with scripts/fetch-test-model),
//! with the fake OpenAI upstream as the cloud fallback.
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use support::fake_openai::Fake;
use support::{serve, sse_chunks};
use tollgate::gateway::{Backend, Gateway, Options};

const MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// `cpu`, or the device `bench/gpu.sh` runs these tests on (`cuda:0`).
fn device() -> String {
    std::env::var("TOLLGATE_TEST_DEVICE").unwrap_or_else(|_| "cpu".into())
}

/// The engines share two cores: one test at a time keeps timings sane.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    assert!(
        Path::new(MODEL).is_file(),
        "{MODEL} is missing: run scripts/fetch-test-model"
    );
    SERIAL.lock().await
}

fn policy(cloud: &str, max_concurrency: u32, max_queue: u32) -> String {
    let device = device();
    format!(
        r#"
version: 1
ledger: none
server: {{ metrics: open }}
providers:
  cloud: {{ kind: openai, base_url: "{cloud}", api_key: upstream-secret, timeout: 5s }}
  local: {{ kind: local, device: "{device}" }}
models:
  smollm2: {{ provider: local, file: {MODEL}, price: {{ gpu_hour: 0.05 }}, context: 8192,
             max_concurrency: {max_concurrency}, max_queue: {max_queue} }}
  smollm2-alias: {{ provider: local, file: {MODEL}, price: {{ input: 0, output: 0 }},
             max_concurrency: {max_concurrency}, max_queue: {max_queue} }}
  gpt-3.5-turbo: {{ provider: cloud, price: {{ input: 0.5, output: 1.5 }} }}
aliases: {{ auto: router }}
routes:
  - {{ name: local-first, to: smollm2, fallback: [gpt-3.5-turbo] }}
retry: {{ max_attempts: 2, backoff: 1ms }}
"#
    )
}

struct Setup {
    url: String,
    gw: Arc<Gateway>,
    cloud: Fake,
}

/// A gateway for `yaml`; local models start loading in the background.
fn gateway(yaml: &str) -> Arc<Gateway> {
    let p = tollgate::policy::load_str("local.yaml", yaml, Path::new("."), &|_| None).unwrap();
    let opts = Options {
        allow_anonymous: true,
        ..Options::default()
    };
    Arc::new(Gateway::new(p, &opts).unwrap())
}

async fn wait_ready(gw: &Gateway) {
    let started = Instant::now();
    while !gw.ready() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "model did not load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn setup(max_concurrency: u32, max_queue: u32) -> Setup {
    let cloud = Fake::start().await;
    let yaml = policy(&cloud.base_url(), max_concurrency, max_queue);
    let gw = gateway(&yaml);
    wait_ready(&gw).await;
    assert_eq!(local(&gw, "smollm2").unavailable_reason(), None);
    let addr = serve(gw.clone()).await;
    Setup {
        url: format!("http://{addr}"),
        gw,
        cloud,
    }
}

fn local<'a>(gw: &'a Gateway, name: &str) -> &'a tollgate::local::LocalModel {
    match &gw.backends[gw.policy.model_ids[name]] {
        Backend::Local(m) => m,
        _ => panic!("{name} is not local"),
    }
}

fn ask(content: &str, max_tokens: u32) -> Value {
    json!({"model": "auto", "temperature": 0, "max_tokens": max_tokens,
           "messages": [{"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": content}]})
}

async fn post(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completes_with_exact_usage_and_respects_max_tokens() {
    let _g = serial().await;
    let s = setup(4, 8).await;
    let body = ask("What is the capital of France?", 8);
    let res = post(&s.url, &body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-model"], "smollm2");
    assert!(res.headers().contains_key("x-tollgate-cost-usd"));
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "smollm2");
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!text.trim().is_empty(), "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 8, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    // Prompt tokens are exactly what the engine's own tokenizer counts.
    let chat = tollgate::request::ChatRequest::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
    let counted = local(&s.gw, "smollm2")
        .count_prompt_tokens(&chat)
        .await
        .unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], counted as u64);
    assert_eq!(s.cloud.hits(), 0);

    // Temperature 0 is deterministic.
    let again: Value = post(&s.url, &body).await.json().await.unwrap();
    assert_eq!(again["choices"][0]["message"]["content"], text);

    // Throughput was measured and is exposed for pricing.
    let rates = local(&s.gw, "smollm2").rates();
    assert!(rates.prefill.unwrap() > 0.0 && rates.generation.unwrap() > 0.0);
    let metrics = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("tollgate_local_generation_tokens_per_second{model=\"smollm2\"}"));
    assert!(!metrics.contains("tollgate_local_generation_tokens_per_second{model=\"smollm2\"} 0\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_token_by_token_and_matches_the_json_answer() {
    let _g = serial().await;
    let s = setup(4, 8).await;
    let mut body = ask("Name three colors.", 12);
    let json_answer: Value = post(&s.url, &body).await.json().await.unwrap();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let res = post(&s.url, &body).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    let (chunks, streamed) = sse_chunks(&text);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.len() >= 5, "token by token: {} chunks", chunks.len());
    assert_eq!(
        streamed,
        json_answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], json_answer["usage"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sequences_end_the_answer_before_them() {
    let _g = serial().await;
    let s = setup(4, 8).await;
    let body = ask("Count from one to ten in words, separated by spaces.", 24);
    let full: Value = post(&s.url, &body).await.json().await.unwrap();
    let full = full["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    // Stop on a word from the middle of the deterministic answer.
    let words: Vec<&str> = full.split_whitespace().collect();
    assert!(words.len() >= 4, "{full}");
    let stop = words[words.len() / 2].to_string();
    let mut with_stop = body.clone();
    with_stop["stop"] = json!([stop]);
    let v: Value = post(&s.url, &with_stop).await.json().await.unwrap();
    let cut = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    assert!(!cut.contains(&stop), "{cut:?} still contains {stop:?}");
    assert!(
        full.starts_with(cut.trim_end()),
        "{cut:?} is not a prefix of {full:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_requests_all_complete() {
    let _g = serial().await;
    let s = setup(8, 8).await;
    let requests = (0..8).map(|i| {
        let url = s.url.clone();
        async move {
            let res = post(&url, &ask(&format!("Say the number {i}."), 6)).await;
            let model = res.headers()["x-tollgate-model"]
                .to_str()
                .unwrap()
                .to_string();
            let v: Value = res.json().await.unwrap();
            (model, v["usage"]["completion_tokens"].as_u64())
        }
    });
    let results = futures::future::join_all(requests).await;
    for (model, tokens) in results {
        assert_eq!(model, "smollm2");
        assert_eq!(tokens, Some(6));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_engine_falls_back_to_the_cloud() {
    let _g = serial().await;
    let s = setup(2, 0).await;
    let requests = (0..6).map(|_| {
        let url = s.url.clone();
        async move {
            let res = post(&url, &ask("Write a short poem about the sea.", 40)).await;
            assert_eq!(res.status(), 200);
            res.headers()["x-tollgate-model"]
                .to_str()
                .unwrap()
                .to_string()
        }
    });
    let models = futures::future::join_all(requests).await;
    let on_local = models.iter().filter(|m| *m == "smollm2").count();
    let on_cloud = models.iter().filter(|m| *m == "gpt-3.5-turbo").count();
    assert_eq!(on_local + on_cloud, 6, "{models:?}");
    assert!((1..=2).contains(&on_local), "at most 2 slots: {models:?}");
    assert_eq!(s.cloud.hits(), on_cloud);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_frees_its_slot() {
    let _g = serial().await;
    let s = setup(1, 0).await;
    let mut body = ask("Tell me a very long story about a dragon.", 400);
    body["stream"] = json!(true);
    let res = post(&s.url, &body).await;
    assert_eq!(res.headers()["x-tollgate-model"], "smollm2");
    let mut stream = res.bytes_stream();
    stream.next().await.unwrap().unwrap();
    let engine = &local(&s.gw, "smollm2").engine;
    assert_eq!(engine.admission.in_flight(), 1);
    drop(stream);
    let started = Instant::now();
    while engine.admission.in_flight() > 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "slot not freed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = post(&s.url, &ask("Hi", 4)).await;
    assert_eq!(
        res.headers()["x-tollgate-model"],
        "smollm2",
        "the slot was free again"
    );
    assert_eq!(s.cloud.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_is_loaded_once_and_shared() {
    let _g = serial().await;
    let s = setup(4, 8).await;
    let a = &local(&s.gw, "smollm2").engine;
    let b = &local(&s.gw, "smollm2-alias").engine;
    assert!(Arc::ptr_eq(a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_file_is_unavailable_and_skipped() {
    let _g = serial().await;
    let cloud = Fake::start().await;
    let yaml = policy(&cloud.base_url(), 1, 1).replace(MODEL, "models/does-not-exist.gguf");
    let gw = gateway(&yaml);
    wait_ready(&gw).await;
    let why = local(&gw, "smollm2").unavailable_reason().unwrap();
    assert!(
        why.contains("not found") && why.contains("fetch-test-model"),
        "{why}"
    );
    let url = format!("http://{}", serve(gw).await);
    let res = post(&url, &ask("Hi", 4)).await;
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-3.5-turbo");
    // Asked for by name, it answers 503 naming the model and why.
    let mut direct = ask("Hi", 4);
    direct["model"] = json!("smollm2");
    let res = post(&url, &direct).await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("smollm2 is unavailable") && message.contains("failed to load"),
        "{message}"
    );
    assert!(
        !message.contains("does-not-exist"),
        "no file path: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_engine_cannot_honour_go_to_the_cloud() {
    let _g = serial().await;
    let s = setup(4, 8).await;
    let mut body = ask("What is the weather in Paris?", 8);
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let res = post(&s.url, &body).await;
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-3.5-turbo");
    assert_eq!(s.cloud.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_engine_without_fallback_answers_503_with_retry_after() {
    let _g = serial().await;
    let s = setup(1, 0).await;
    let mut long = ask("Tell me a very long story about a dragon.", 400);
    long["stream"] = json!(true);
    let busy = post(&s.url, &long).await;
    assert_eq!(busy.headers()["x-tollgate-model"], "smollm2");
    // A concrete model has no fallback chain: the client is told to retry.
    let mut direct = ask("Hi", 4);
    direct["model"] = json!("smollm2");
    let res = post(&s.url, &direct).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    drop(busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_model_and_a_template_file_overrides_the_gguf_one() {
    let _g = serial().await;
    let cloud = Fake::start().await;
    let yaml = policy(&cloud.base_url(), 2, 2).replace(
        "price: { input: 0, output: 0 },",
        "price: { input: 0, output: 0 }, chat_template: templates/llama2-chat.jinja,",
    );
    let gw = gateway(&yaml);
    assert!(!gw.ready(), "not ready while the model loads");
    let url = format!("http://{}", serve(gw.clone()).await);
    let early = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(early.status(), 503);
    wait_ready(&gw).await;
    assert_eq!(
        reqwest::get(format!("{url}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );
    // Two engines (different templates): the Llama 2 [INST] template makes a
    // different prompt than the GGUF's ChatML one.
    let (chatml, inst) = (local(&gw, "smollm2"), local(&gw, "smollm2-alias"));
    assert!(!Arc::ptr_eq(&chatml.engine, &inst.engine));
    let body = ask("Hello there", 4);
    let chat = tollgate::request::ChatRequest::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
    let a = chatml.count_prompt_tokens(&chat).await.unwrap();
    let b = inst.count_prompt_tokens(&chat).await.unwrap();
    assert_ne!(a, b, "the template file was not used");
}

/// The shipped `policies/default.yaml`, with its OpenAI provider pointed at
/// the fake upstream.
async fn shipped_default(cloud: &Fake) -> (String, Arc<Gateway>) {
    let text = std::fs::read_to_string("policies/default.yaml").unwrap();
    let base = cloud.base_url();
    let env = move |name: &str| match name {
        "OPENAI_BASE_URL" => Some(base.clone()),
        "OPENAI_API_KEY" => Some("upstream-secret".to_string()),
        "TOLLGATE_LEDGER" => Some("none".to_string()),
        _ => None,
    };
    let p = tollgate::policy::load_str("default.yaml", &text, Path::new("policies"), &env).unwrap();
    // As `serve` runs it: with the learned router.
    let router = match tollgate::classify::load_router(&tollgate::classify::Router::default_dir()) {
        tollgate::classify::RouterLoad::Loaded(r) => Arc::from(r),
        _ => panic!("the learned router's files are needed (scripts/fetch-test-model)"),
    };
    let opts = Options {
        allow_anonymous: true,
        router: Some(router),
        ..Options::default()
    };
    let gw = Arc::new(Gateway::new(p, &opts).unwrap());
    wait_ready(&gw).await;
    (format!("http://{}", serve(gw.clone()).await), gw)
}

fn strong_score(h: &reqwest::header::HeaderMap) -> f64 {
    h["x-tollgate-strong-score"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_policy_sends_hard_code_to_gpt4_and_greetings_to_the_local_model() {
    let _g = serial().await;
    let cloud = Fake::start().await;
    let (url, _gw) = shipped_default(&cloud).await;

    let hard = json!({"model": "auto", "max_tokens": 50, "messages": [{"role": "user", "content":
        "Implement a thread-safe LRU cache in Rust with O(1) get and put. It must not use \
         unsafe code and should come with unit tests."}]});
    let res = post(&url, &hard).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-model"], "gpt-4");
    assert_eq!(h["x-tollgate-route"], "code");
    assert_eq!(h["x-tollgate-task"], "code");
    let reason = h["x-tollgate-reason"].to_str().unwrap();
    assert!(
        reason.starts_with("rule code: task=code, complexity="),
        "{reason}"
    );
    assert_eq!(cloud.requests()[0].body["model"], "gpt-4");

    let greeting = json!({"model": "auto", "max_tokens": 8,
                          "messages": [{"role": "user", "content": "Hi there!"}]});
    let res = post(&url, &greeting).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-model"], "smollm2-135m");
    assert_eq!(h["x-tollgate-route"], "local-first");
    assert_eq!(h["x-tollgate-task"], "chat");
    assert_eq!(h["x-tollgate-complexity"], "low");
    assert_eq!(
        h["x-tollgate-reason"],
        "rule local-first: first route without conditions"
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["model"], "smollm2-135m");

    // A summary goes to the local model by the evidence-based rule.
    let summary = json!({"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content":
        "Summarize in one sentence: The meeting moved to Thursday because the venue was booked."}]});
    let res = post(&url, &summary).await;
    assert_eq!(res.headers()["x-tollgate-route"], "summarize-local");
    assert_eq!(res.headers()["x-tollgate-model"], "smollm2-135m");
    assert_eq!(cloud.hits(), 1, "only the code request went to the cloud");

    // The learned router: a hard proof goes to GPT-4 by its strong_score,
    // a simple rewrite stays local.
    let proof = json!({"model": "auto", "max_tokens": 50, "messages": [{"role": "user", "content":
        "Prove that for every prime p > 3, p^2 - 1 is divisible by 24."}]});
    let res = post(&url, &proof).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-model"], "gpt-4");
    assert_eq!(h["x-tollgate-route"], "strong");
    let score = strong_score(&h);
    assert!(score >= 0.32, "{score}");
    let reason = h["x-tollgate-reason"].to_str().unwrap();
    assert!(
        reason.starts_with("rule strong: strong_score=0."),
        "{reason}"
    );
    let rewrite = json!({"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content":
        "Rewrite this sentence more concisely: The meeting that we had planned for Monday has been moved."}]});
    let res = post(&url, &rewrite).await;
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-model"], "smollm2-135m");
    assert_eq!(h["x-tollgate-route"], "local-first");
    let score = strong_score(&h);
    assert!(score < 0.26, "{score}");
    assert_eq!(
        cloud.hits(),
        2,
        "the proof went to the cloud, the rewrite did not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_too_long_for_the_local_context_moves_to_the_cloud() {
    let _g = serial().await;
    let cloud = Fake::start().await;
    let (url, _gw) = shipped_default(&cloud).await;
    // ~9,000 tokens: more than the local model's 8,192, within gpt-3.5-turbo's 16,385.
    let doc = "The quarterly report shows steady growth in every region. ".repeat(900);
    let body = json!({"model": "auto", "max_tokens": 100, "messages": [{"role": "user",
        "content": format!("Summarize this report:\n{doc}")}]});
    let res = post(&url, &body).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-route"], "summarize-local");
    assert_eq!(h["x-tollgate-model"], "gpt-3.5-turbo");
    let reason = h["x-tollgate-reason"].to_str().unwrap();
    assert!(
        reason.contains("smollm2-135m skipped: needs") && reason.contains("context 8192"),
        "{reason}"
    );
    assert_eq!(cloud.requests()[0].body["model"], "gpt-3.5-turbo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_and_completions_for_the_local_engine_are_a_400() {
    let _g = serial().await;
    let s = setup(4, 8).await;
    for (path, body) in [
        ("embeddings", json!({"model": "smollm2", "input": "hi"})),
        ("completions", json!({"model": "smollm2", "prompt": "hi"})),
    ] {
        let res = reqwest::Client::new()
            .post(format!("{}/v1/{path}", s.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{path}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["error"]["param"], "model");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("smollm2 cannot serve this endpoint"),
            "{message}"
        );
    }
    assert_eq!(s.cloud.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_responses_api_is_translated_for_the_local_engine() {
    let _g = serial().await;
    let s = setup(4, 8).await;
    let respond = |body: Value| {
        let url = format!("{}/v1/responses", s.url);
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let body = json!({"model": "auto", "instructions": "You are a helpful assistant.",
                      "input": "What is the capital of France?", "max_output_tokens": 8,
                      "temperature": 0});
    let res = respond(body.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-model"], "smollm2");
    let reason = res.headers()["x-tollgate-reason"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("Responses translated"), "{reason}");
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "incomplete", "8 tokens cut it: {r}");
    assert_eq!(r["usage"]["output_tokens"], 8);
    let text = r["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!text.trim().is_empty(), "{r}");
    // The same request as chat gets the same answer from the engine.
    let chat = ask("What is the capital of France?", 8);
    let c: Value = post(&s.url, &chat).await.json().await.unwrap();
    assert_eq!(c["choices"][0]["message"]["content"], json!(text));
    assert_eq!(c["usage"]["prompt_tokens"], r["usage"]["input_tokens"]);

    // Streamed: the deltas spell the same text; the usage is in the end event.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let sse = respond(streamed).await.text().await.unwrap();
    let mut deltas = String::new();
    let mut last = Value::Null;
    for frame in sse.split("\n\n").filter(|f| !f.is_empty()) {
        let (head, data) = frame.split_once("\ndata: ").unwrap();
        let e: Value = serde_json::from_str(data).unwrap();
        assert_eq!(head, format!("event: {}", e["type"].as_str().unwrap()));
        if e["type"] == "response.output_text.delta" {
            deltas.push_str(e["delta"].as_str().unwrap());
        }
        last = e;
    }
    assert_eq!(deltas, text);
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["usage"]["output_tokens"], 8);

    // Stored state cannot live in the local engine: the cloud model,
    // which speaks Responses, takes it.
    let res = respond(json!({"model": "auto", "input": "And Spain?",
                             "previous_response_id": "resp_1", "max_output_tokens": 8}))
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-3.5-turbo");
    let reason = res.headers()["x-tollgate-reason"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("smollm2 skipped: cannot honour"),
        "{reason}"
    );
    assert_eq!(s.cloud.requests()[0].body["previous_response_id"], "resp_1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tensor_types_without_simd_are_named_at_load_and_in_readyz() {
    let _g = serial().await;
    let simd = cfg!(any(target_feature = "avx2", target_feature = "neon"));
    for (file, slow) in [
        (MODEL, Some("Q4_1 (210 tensors)")),
        (
            "models/SmolLM2-135M-Instruct.Q8_0.gguf",
            (!simd).then_some("Q8_0"),
        ),
        (
            "models/SmolLM2-135M-Instruct.Q4_0.gguf",
            (!simd).then_some("Q4_0"),
        ),
    ] {
        assert!(
            Path::new(file).is_file(),
            "{file} is missing: run scripts/requantize"
        );
        let yaml = format!(
            "version: 1\nledger: none\nproviders:\n  local: {{ kind: local, device: cpu }}\n\
             models:\n  m: {{ provider: local, file: {file}, price: {{ input: 0, output: 0 }} }}\n"
        );
        let gw = gateway(&yaml);
        wait_ready(&gw).await;
        let url = format!("http://{}", serve(gw.clone()).await);
        let ready: Value = reqwest::get(format!("{url}/readyz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let warnings = ready["warnings"].as_array().unwrap();
        match slow {
            Some(kind) => {
                assert_eq!(warnings.len(), 1, "{file}: {ready}");
                let w = warnings[0]["warning"].as_str().unwrap();
                assert!(w.contains(kind) && w.contains("built for"), "{w}");
            }
            None => assert!(warnings.is_empty(), "{file}: {ready}"),
        }
        // The requantized files answer like the original does.
        let res = post(
            &url,
            &json!({"model": "m", "temperature": 0, "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hello."}]}),
        )
        .await;
        assert_eq!(res.status(), 200, "{file}");
        let body: Value = res.json().await.unwrap();
        let text = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(!text.trim().is_empty(), "{file}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_clients_are_answered_by_the_local_engine() {
    let _g = serial().await;
    let s = setup(4, 8).await;
    let client = reqwest::Client::new();
    let body = json!({"model": "smollm2", "max_tokens": 12, "temperature": 0,
        "system": "You are a helpful assistant.",
        "messages": [{"role": "user", "content": "Name three colors."}]});
    let res = client
        .post(format!("{}/v1/messages", s.url))
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-model"], "smollm2");
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["type"], "message");
    assert_eq!(m["stop_reason"], "max_tokens", "{m}");
    assert_eq!(m["usage"]["output_tokens"], 12);
    let text = m["content"][0]["text"].as_str().unwrap().to_string();
    assert!(!text.is_empty());
    // Streamed, the same answer (temperature 0), as Anthropic's events.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let sse = client
        .post(format!("{}/v1/messages", s.url))
        .json(&streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut joined = String::new();
    for line in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let e: Value = serde_json::from_str(line).unwrap();
        if e["type"] == "content_block_delta" {
            joined.push_str(e["delta"]["text"].as_str().unwrap());
        }
    }
    assert_eq!(joined, text);
    assert!(sse.contains("event: message_stop"), "{sse}");
    assert_eq!(s.cloud.hits(), 0);
}
