//! Throughput of the embedded engine, in process (no HTTP): prefill and
//! generation tokens/s for one stream, and for 1/4/8 concurrent requests
//! the aggregate and per-request rates and time to first token.
//!
//!   cargo run --release --example local_bench -- [--model FILE] [--max-tokens N] [--rounds N]
//!       [--concurrency 1,4,8] [--device auto|cpu|cuda:N] [--template FILE.jinja]
//!       [--kv-cache-gb N] [--no-fifo]
//!
//! `bench/local.sh` runs it next to llama.cpp on the same file and prompt.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use tollgate::gateway::{Backend, Gateway, Options};
use tollgate::local::LocalModel;
use tollgate::request::ChatRequest;
use tollgate::upstream::Reply;

/// The same prompt as bench/llamacpp_bench.py.
pub const PROMPT: &str = "Summarize the following text in three sentences.\n\n\
The history of the bicycle spans more than two centuries. Early designs, such as the \
draisine of 1817, had no pedals: riders pushed themselves along with their feet. \
Pedals attached to the front wheel appeared in the 1860s, and the high-wheeler followed, \
with a huge front wheel that made each turn of the pedals carry the rider farther. These \
machines were fast but dangerous. The safety bicycle of the 1880s, with two wheels of \
equal size and a chain drive to the rear wheel, made cycling practical for everyone. \
Pneumatic tyres soon made the ride comfortable, and within a decade bicycles had \
changed how people travelled to work, courted, and campaigned for the right to vote.";

struct Run {
    ttft: Duration,
    total: Duration,
    prompt_tokens: u64,
    completion_tokens: u64,
}

async fn one(m: &LocalModel, max_tokens: u32) -> Run {
    let body = json!({"model": "bench", "stream": true, "temperature": 0, "max_tokens": max_tokens,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": PROMPT}]});
    let chat = ChatRequest::parse(&serde_json::to_vec(&body).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let started = Instant::now();
    let mut none = None;
    let Ok(Reply::Stream(mut s)) = m.chat(&chat, Arc::from("bench"), &mut none).await else {
        panic!("the engine did not stream");
    };
    let mut ttft = None;
    let mut usage = (0, 0);
    while let Some(frame) = s.next().await {
        let text = String::from_utf8_lossy(&frame);
        let Some(data) = text.strip_prefix("data: ").map(str::trim) else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        if ttft.is_none()
            && v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        {
            ttft = Some(started.elapsed());
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            usage = (
                u["prompt_tokens"].as_u64().unwrap_or(0),
                u["completion_tokens"].as_u64().unwrap_or(0),
            );
        }
    }
    let total = started.elapsed();
    Run {
        ttft: ttft.unwrap_or(total),
        total,
        prompt_tokens: usage.0,
        completion_tokens: usage.1,
    }
}

fn pct(mut xs: Vec<f64>, p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i.min(xs.len() - 1)]
}

struct Args {
    file: String,
    device: String,
    /// Extra model settings (template, kv_cache), YAML flow entries.
    extra: String,
}

async fn gateway(a: &Args, max_concurrency: usize) -> Arc<Gateway> {
    let yaml = format!(
        "version: 1\nproviders:\n  local: {{ kind: local, device: \"{}\" }}\nmodels:\n  bench: {{ provider: local, file: \"{}\", price: {{ gpu_hour: 1 }}, max_concurrency: {max_concurrency}, max_queue: 64{} }}\n",
        a.device, a.file, a.extra
    );
    let p = tollgate::policy::load_str("bench.yaml", &yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = Arc::new(
        Gateway::new(
            p,
            &Options {
                allow_anonymous: true,
                ..Options::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}")),
    );
    while !gw.ready() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw
}

fn local(gw: &Gateway) -> &LocalModel {
    match &gw.backends[0] {
        Backend::Local(m) => m,
        _ => panic!("not local"),
    }
}

#[tokio::main]
async fn main() {
    let mut a = Args {
        file: "models/SmolLM2-135M-Instruct.Q4_1.gguf".to_string(),
        device: "auto".to_string(),
        extra: String::new(),
    };
    let mut max_tokens = 64u32;
    let mut rounds = 3usize;
    let mut levels = vec![1usize, 4, 8];
    let mut fifo = true;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--no-fifo" {
            fifo = false;
            continue;
        }
        let v = args.next().unwrap_or_default();
        match flag.as_str() {
            "--model" => a.file = v,
            "--max-tokens" => max_tokens = v.parse().unwrap_or(64),
            "--rounds" => rounds = v.parse().unwrap_or(3),
            "--concurrency" => levels = v.split(',').filter_map(|n| n.parse().ok()).collect(),
            "--device" => a.device = v,
            "--template" => a.extra += &format!(", chat_template: \"{v}\""),
            "--kv-cache-gb" => a.extra += &format!(", kv_cache: {{ memory_gb: {v} }}"),
            _ => panic!("usage: local_bench [--model FILE] [--max-tokens N] [--rounds N] [--concurrency 1,4,8] [--device D] [--template F] [--kv-cache-gb N] [--no-fifo]"),
        }
    }
    println!(
        "engine: mistralrs (in tollgate), model {}, device {}, max_tokens {max_tokens}, temperature 0",
        a.file, a.device
    );
    let max = levels.iter().copied().max().unwrap_or(1);
    let gw = gateway(&a, max).await;
    let m = local(&gw);
    if let Some(w) = m.warning() {
        println!("warning: {w}");
    }
    one(m, 8).await; // warm-up

    println!("\n| concurrent | aggregate tok/s (completion tokens ÷ wall time) | per-request gen tok/s | prefill tok/s (p50) | TTFT p50 ms | TTFT p99 ms |");
    println!("|---|---|---|---|---|---|");
    let mut solo_latency = Duration::ZERO;
    for &n in &levels {
        let mut runs = Vec::new();
        let mut wall = Duration::ZERO;
        for _ in 0..rounds {
            let started = Instant::now();
            let batch = futures::future::join_all((0..n).map(|_| one(m, max_tokens))).await;
            wall += started.elapsed();
            runs.extend(batch);
        }
        let gen_tokens: u64 = runs.iter().map(|r| r.completion_tokens).sum();
        let per_req: Vec<f64> = runs
            .iter()
            .map(|r| {
                r.completion_tokens.saturating_sub(1) as f64 / (r.total - r.ttft).as_secs_f64()
            })
            .collect();
        let prefill: Vec<f64> = runs
            .iter()
            .map(|r| r.prompt_tokens as f64 / r.ttft.as_secs_f64())
            .collect();
        let ttft: Vec<f64> = runs.iter().map(|r| r.ttft.as_secs_f64() * 1e3).collect();
        if n == 1 {
            solo_latency = runs.iter().map(|r| r.total).sum::<Duration>() / runs.len() as u32;
        }
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
            gen_tokens as f64 / wall.as_secs_f64(),
            pct(per_req, 0.5),
            pct(prefill.clone(), 0.5),
            pct(ttft.clone(), 0.5),
            pct(ttft, 0.99),
        );
    }
    println!(
        "\nprompt: {} tokens; per-request gen tok/s excludes the first token (prefill)",
        one(m, 1).await.prompt_tokens
    );

    if !fifo {
        return;
    }
    // FIFO admission: with one slot, the first of 8 simultaneous requests
    // runs alone, so its latency stays close to a solo run.
    let fifo = gateway(&a, 1).await;
    let m1 = local(&fifo);
    one(m1, 8).await;
    let mut firsts = Vec::new();
    for _ in 0..rounds {
        let first = one(m1, max_tokens);
        let rest = futures::future::join_all((0..7).map(|_| one(m1, max_tokens)));
        let (first, _) = futures::join!(first, rest);
        firsts.push(first.total);
    }
    let first = firsts.iter().sum::<Duration>() / firsts.len() as u32;
    println!(
        "FIFO (max_concurrency 1, 8 at once): first request {:.0} ms vs solo {:.0} ms = {:.2}x",
        first.as_secs_f64() * 1e3,
        solo_latency.as_secs_f64() * 1e3,
        first.as_secs_f64() / solo_latency.as_secs_f64()
    );
}
