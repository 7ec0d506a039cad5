//! Money, end to end: per-token costs in the ledger, budgets under
//! concurrency, downgrade along the chain, period rollover, and reports.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use support::fake_openai::{self, Behavior, Fake};
use support::{hash, serve};
use tollgate::clock::{parse_day, Clock};
use tollgate::gateway::{Gateway, Options};

const KEY: &str = "tg_acct_core";
const WEB_KEY: &str = "tg_acct_web";
const ADMIN_KEY: &str = "tg_acct_admin";

/// gpt-4 ($30/$60) → gpt-3.5-turbo ($1.5/$2) on `primary`, then
/// backup-model ($0.5/$1) on `backup`; the ledger in `dir`.
fn policy(primary: &str, backup: &str, ledger: &str, budgets: &str) -> String {
    format!(
        r#"
version: 1
ledger: "sqlite:{ledger}"
providers:
  primary: {{ kind: openai, base_url: "{primary}", api_key: upstream-secret, timeout: 2s }}
  backup: {{ kind: openai, base_url: "{backup}", api_key: upstream-secret, timeout: 2s }}
models:
  gpt-4: {{ provider: primary, price: {{ input: 30, output: 60 }} }}
  gpt-3.5-turbo: {{ provider: primary, price: {{ input: 1.5, output: 2 }} }}
  backup-model: {{ provider: backup, price: {{ input: 0.5, output: 1 }}, tokenizer: cl100k }}
aliases: {{ auto: router }}
routes:
  - name: main
    when: {{ model: [auto, gpt-4] }}
    to: gpt-4
    fallback: [gpt-3.5-turbo, backup-model]
keys:
  - {{ id: core-key, team: core, hash: "{}" }}
  - {{ id: web-key, team: web, hash: "{}" }}
  - {{ id: ops, team: platform, hash: "{}", admin: true }}
retry: {{ max_attempts: 3, backoff: 1ms }}
budgets:
{budgets}
"#,
        hash(KEY),
        hash(WEB_KEY),
        hash(ADMIN_KEY)
    )
}

struct Setup {
    url: String,
    gw: Arc<Gateway>,
    primary: Fake,
    backup: Fake,
    ledger: String,
    _dir: tempfile::TempDir,
}

async fn setup_with(budgets: &str, clock: Clock, primary: Fake) -> Setup {
    let backup = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let yaml = policy(&primary.base_url(), &backup.base_url(), &ledger, budgets);
    let (url, gw) = start_gateway(
        &yaml,
        Options {
            clock,
            ..Options::default()
        },
    )
    .await;
    Setup {
        url,
        gw,
        primary,
        backup,
        ledger,
        _dir: dir,
    }
}

/// A gateway for `yaml`, served on a free port, its models' prompt
/// counts verified already (`support::verified`).
async fn start_gateway(yaml: &str, opts: Options) -> (String, Arc<Gateway>) {
    let p = tollgate::policy::load_str("acct.yaml", yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = Arc::new(Gateway::new(p, &opts).unwrap());
    support::verified(&gw);
    (format!("http://{}", serve(gw.clone()).await), gw)
}

async fn setup(budgets: &str) -> Setup {
    setup_with(budgets, Clock::default(), Fake::start().await).await
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 7, "messages": [{"role": "user", "content": "Say hello"}]})
}

async fn post(url: &str, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn admin_get(url: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
}

async fn admin_json(url: &str, path: &str) -> Value {
    admin_get(url, path).await.json().await.unwrap()
}

/// (request_id, model, status, ending, prompt, completion, cost, baseline, key)
type LedgerRow = (String, String, u16, String, u64, u64, u64, u64, String);

fn rows(s: &Setup) -> Vec<LedgerRow> {
    assert!(s.gw.ledger.as_ref().unwrap().flush(Duration::from_secs(5)));
    let conn = rusqlite::Connection::open(&s.ledger).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT request_id, model, status, ending, prompt_tokens, completion_tokens, \
             cost_nanos, baseline_nanos, key_id FROM tollgate_ledger ORDER BY ts, rowid",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get::<_, i64>(4)? as u64,
            r.get::<_, i64>(5)? as u64,
            r.get::<_, i64>(6)? as u64,
            r.get::<_, i64>(7)? as u64,
            r.get(8)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test]
async fn every_request_is_accounted_to_the_nano_dollar() {
    let slow = Fake::start_with(fake_openai::Options {
        chunk_delay: Duration::from_millis(300),
        ..fake_openai::Options::default()
    })
    .await;
    let s = setup_with("  []", Clock::default(), slow).await;

    // 1. gpt-4, JSON: 6 prompt × $30/M + 7 completion × $60/M = $0.0006.
    let res = post(&s.url, KEY, &hello("gpt-4")).await;
    assert_eq!(res.headers()["x-tollgate-cost-usd"], "0.0006");
    let id1 = res.headers()["x-request-id"].to_str().unwrap().to_string();
    res.bytes().await.unwrap();

    // 2. gpt-3.5-turbo direct: 6 × 1.5 + 7 × 2 = $0.000023; baseline gpt-4 $0.0006.
    let res = post(&s.url, KEY, &hello("gpt-3.5-turbo")).await;
    assert_eq!(res.headers()["x-tollgate-cost-usd"], "0.000023");
    res.bytes().await.unwrap();

    // 3. Fallback: gpt-4 and gpt-3.5 fail (500), backup answers at $0.5/$1.
    s.primary
        .script([Behavior::Status(500), Behavior::Status(500)]);
    let res = post(&s.url, KEY, &hello("auto")).await;
    assert_eq!(res.headers()["x-tollgate-model"], "backup-model");
    assert_eq!(res.headers()["x-tollgate-cost-usd"], "0.00001");
    res.bytes().await.unwrap();

    // 4. Everything fails: 502, nothing charged.
    s.primary
        .script([Behavior::Status(500), Behavior::Status(500)]);
    s.backup.script([Behavior::Status(500)]);
    assert_eq!(post(&s.url, KEY, &hello("auto")).await.status(), 502);

    // 5. A bad request is still a row (status 400, no model, no cost).
    let res = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(WEB_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // 6. A stream read to the end: 6 prompt + 5 completion tokens on gpt-4.
    let mut body = hello("gpt-4");
    body["stream"] = json!(true);
    let text = post(&s.url, KEY, &body).await.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));

    // 7. A stream the client leaves after the first chunk.
    let res = post(&s.url, WEB_KEY, &body).await;
    let mut chunks = res.bytes_stream();
    chunks.next().await.unwrap().unwrap();
    drop(chunks);
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let r = rows(&s);
    let summary: Vec<(&str, u16, &str, u64, u64, u64, u64)> = r
        .iter()
        .map(|r| (r.1.as_str(), r.2, r.3.as_str(), r.4, r.5, r.6, r.7))
        .collect();
    assert_eq!(
        summary,
        [
            ("gpt-4", 200, "complete", 6, 7, 600_000, 600_000),
            ("gpt-3.5-turbo", 200, "complete", 6, 7, 23_000, 600_000),
            ("backup-model", 200, "complete", 6, 7, 10_000, 600_000),
            ("backup-model", 502, "error", 0, 0, 0, 0),
            ("", 400, "error", 0, 0, 0, 0),
            ("gpt-4", 200, "complete", 6, 5, 480_000, 480_000),
            // Usage never arrived: the prompt is charged at its cl100k count (9).
            ("gpt-4", 499, "client_gone", 9, 0, 270_000, 270_000),
        ]
    );
    assert_eq!(r[0].0, id1, "rows carry the request id");
    assert_eq!(r[4].8, "web-key");

    // The report agrees with the rows, to the nano-dollar.
    let rep: Value = admin_json(&s.url, "/admin/report?by=model&format=json").await;
    let sum: u64 = r.iter().map(|r| r.6).sum();
    assert_eq!(rep["total"]["cost_nanos"], sum);
    assert_eq!(rep["total"]["requests"], 7);
    assert_eq!(rep["groups"][0]["model"], "gpt-4");
    assert_eq!(rep["groups"][0]["cost_nanos"], 600_000 + 480_000 + 270_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_never_overspend_a_budget() {
    // Worst case per request: 9 prompt (cl100k) × $30/M + 7 × $60/M =
    // $0.00069; the real cost is $0.0006. The limit fits 50 worst cases.
    let limit_nanos = 50 * 690_000u64;
    let budgets = format!(
        "  - {{ scope: {{ global: true }}, limit_usd: {}, period: day }}",
        tollgate::money::Nanos(limit_nanos)
    );
    let delayed = Fake::start().await;
    let s = setup_with(&budgets, Clock::default(), delayed).await;
    s.primary.script(std::iter::repeat_n(
        Behavior::Delay(Duration::from_millis(20)),
        300,
    ));
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let url = s.url.clone();
        tasks.push(tokio::spawn(async move {
            let res = post(&url, KEY, &hello("gpt-4")).await;
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (status, body)
        }));
    }
    let (mut admitted, mut rejected) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => admitted += 1,
            (429, b) => {
                assert_eq!(b["error"]["code"], "insufficient_quota", "{b}");
                assert_eq!(b["error"]["type"], "insufficient_quota");
                rejected += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(admitted + rejected, 300);
    assert!(admitted >= 50, "admitted only {admitted}");
    assert!(rejected > 0);
    let r = rows(&s);
    assert_eq!(r.len(), 300);
    let spent: u64 = r.iter().map(|r| r.6).sum();
    assert!(spent <= limit_nanos, "spent {spent} > limit {limit_nanos}");
    assert_eq!(spent, admitted as u64 * 600_000);
    // The budget store agrees with the ledger, to the nano-dollar.
    let b: Value = admin_json(&s.url, "/admin/budgets").await;
    let st = &b["data"][0];
    assert_eq!(st["budget"], "global/day");
    assert_eq!(st["spent_usd"], tollgate::money::Nanos(spent).to_string());
    assert_eq!(st["reserved_usd"], "0");
    assert_eq!(st["limit_usd"], "0.0345");
}

#[tokio::test]
async fn a_team_near_its_budget_moves_down_the_chain() {
    // $0.002: three gpt-4 answers ($0.0006 each, $0.00069 reserved), then
    // gpt-3.5 ($0.000023, $0.0000275 reserved) while it fits, then the
    // backup ($0.00001, $0.0000115 reserved), then nothing fits.
    let s = setup(
        "  - { scope: { team: core }, limit_usd: 0.002, period: month, on_exhausted: downgrade, alert_at: [0.8] }",
    )
    .await;
    let mut models = Vec::new();
    let mut last_reason = String::new();
    loop {
        let res = post(&s.url, KEY, &hello("auto")).await;
        if res.status() == 429 {
            let b: Value = res.json().await.unwrap();
            assert_eq!(b["error"]["code"], "insufficient_quota");
            assert!(b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("team:core/month"));
            break;
        }
        assert_eq!(res.status(), 200);
        let h = res.headers();
        models.push(h["x-tollgate-model"].to_str().unwrap().to_string());
        last_reason = h["x-tollgate-reason"].to_str().unwrap().to_string();
        assert!(h.contains_key("x-tollgate-budget-remaining-usd"));
        assert!(models.len() < 50, "never exhausted");
    }
    let count = |m: &str| models.iter().filter(|x| *x == m).count();
    assert_eq!(
        (
            count("gpt-4"),
            count("gpt-3.5-turbo"),
            count("backup-model")
        ),
        (3, 8, 1),
        "{models:?}"
    );
    assert!(
        last_reason.contains("gpt-4 skipped: budget team:core/month exhausted (downgrade)")
            && last_reason.contains("gpt-3.5-turbo skipped"),
        "{last_reason}"
    );
    // Another team is unaffected.
    let res = post(&s.url, WEB_KEY, &hello("auto")).await;
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-4");

    // The report shows the move down the chain, and the savings.
    let rep: Value = admin_json(&s.url, "/admin/report?by=team,model&format=json").await;
    let core: Vec<(String, u64)> = rep["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["team"] == "core" && g["model"] != "")
        .map(|g| {
            (
                g["model"].as_str().unwrap().to_string(),
                g["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        core,
        [
            ("gpt-4".to_string(), 3),
            ("gpt-3.5-turbo".to_string(), 8),
            ("backup-model".to_string(), 1)
        ]
    );
    // Beside the savings, the router's estimated quality retained: core's
    // 9 answers from models other than the baseline each carry the
    // request's strong_score (0.05 for "Say hello") as expected loss, out
    // of 13 scored requests: 1 − 0.45 / 13 = 96.5%. Web got GPT-4: 100%.
    let by_team: Value = admin_json(&s.url, "/admin/report?by=team&format=json").await;
    let team = |t: &str| {
        by_team["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["team"] == t)
            .unwrap()["quality_retained_pct"]
            .clone()
    };
    assert_eq!((team("core"), team("web")), (json!("96.5"), json!("100.0")));
    // 80% of $0.002 was crossed once: counted in /metrics.
    let metrics = admin_get(&s.url, "/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tollgate_budget_alerts_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tollgate_budget_rejections_total 1"));
    // Requests by route/model/status, tokens and money by model.
    for line in [
        "tollgate_requests_total{route=\"main\",model=\"gpt-4\",status=\"200\"} 4",
        "tollgate_requests_total{route=\"main\",model=\"gpt-3.5-turbo\",status=\"200\"} 8",
        "tollgate_requests_total{route=\"main\",model=\"\",status=\"429\"} 1",
        "tollgate_completion_tokens_total{model=\"gpt-4\"} 28",
        "tollgate_cost_usd_total{model=\"gpt-4\"} 0.0024",
        "tollgate_request_duration_seconds_count{model=\"backup-model\"} 1",
        "tollgate_gateway_overhead_seconds_count{model=\"gpt-4\"} 4",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    let csv = admin_get(&s.url, "/admin/report?by=model&format=csv")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with(
            "model,requests,prompt_tokens,completion_tokens,cost_usd,baseline_usd,savings_usd"
        ),
        "{csv}"
    );
}

#[tokio::test]
async fn budgets_roll_over_with_the_period() {
    let noon = parse_day("2026-11-28").unwrap() + 12 * 3_600_000;
    let clock = Clock::manual(noon);
    // Fits two gpt-4 requests a day ($0.00069 reserved each).
    let s = setup_with(
        "  - { scope: { key: core-key }, limit_usd: 0.0015, period: day }",
        clock.clone(),
        Fake::start().await,
    )
    .await;
    for _ in 0..2 {
        assert_eq!(post(&s.url, KEY, &hello("gpt-4")).await.status(), 200);
    }
    assert_eq!(post(&s.url, KEY, &hello("gpt-4")).await.status(), 429);
    clock.set(noon + 86_400_000);
    let res = post(&s.url, KEY, &hello("gpt-4")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-budget-remaining-usd"], "0.0009");
    let b: Value = admin_json(&s.url, "/admin/budgets").await;
    assert_eq!(b["data"][0]["period_end"], "2026-11-30T00:00:00Z");
    let rep: Value = admin_json(
        &s.url,
        "/admin/report?by=day&from=2026-11-28&to=2026-11-29&format=json",
    )
    .await;
    let days: Vec<(&str, u64)> = rep["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["day"].as_str().unwrap(), g["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(days, [("2026-11-28", 3), ("2026-11-29", 1)]);
}

#[tokio::test]
async fn spending_survives_a_restart_through_the_ledger() {
    let budgets = "  - { scope: { team: core }, limit_usd: 0.0015, period: month }";
    let s = setup(budgets).await;
    for _ in 0..2 {
        assert_eq!(post(&s.url, KEY, &hello("gpt-4")).await.status(), 200);
    }
    s.gw.close();
    // A new gateway on the same ledger starts with $0.0012 spent.
    let yaml = policy(
        &s.primary.base_url(),
        &s.backup.base_url(),
        &s.ledger,
        budgets,
    );
    let (url, _gw) = start_gateway(&yaml, Options::default()).await;
    let res = post(&url, KEY, &hello("gpt-4")).await;
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn admin_endpoints_need_an_admin_key() {
    let s = setup("  []").await;
    let res = post(&s.url, KEY, &hello("gpt-4")).await;
    assert_eq!(res.status(), 200);
    for path in ["/admin/report", "/admin/budgets", "/dashboard"] {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", s.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path}");
    }
    // Browsers: a challenge, then Basic auth with the admin key.
    let res = reqwest::get(format!("{}/dashboard", s.url)).await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let res = reqwest::Client::new()
        .get(format!("{}/dashboard", s.url))
        .basic_auth("admin", Some(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Spend per day, by model") && html.contains("<svg"));
    assert!(
        !html.contains("Say hello"),
        "no prompt text on the dashboard"
    );
    let res = admin_get(&s.url, "/admin/report?by=colour").await;
    assert_eq!(res.status(), 400);
    let table = admin_get(&s.url, "/admin/report?since=1h")
        .await
        .text()
        .await
        .unwrap();
    assert!(table.contains("TOTAL"), "{table}");
}

#[tokio::test]
async fn a_stream_that_outgrows_its_reservation_is_cut_and_accounted() {
    // No max_tokens: the reservation covers what is left of a 12-token
    // context after the 9-token prompt, 3 completion tokens, and that
    // bound is sent upstream. This upstream ignores it and streams 5
    // content pieces.
    let primary = Fake::start_with(fake_openai::Options {
        ignore_max_tokens: true,
        ..fake_openai::Options::default()
    })
    .await;
    let backup = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let yaml = format!(
        r#"
version: 1
ledger: "sqlite:{ledger}"
providers:
  up: {{ kind: openai, base_url: "{}", api_key: upstream-secret }}
models:
  tiny: {{ provider: up, price: {{ input: 1, output: 1000 }}, context: 12, tokenizer: cl100k }}
budgets:
  - {{ scope: {{ global: true }}, limit_usd: 1, period: total }}
"#,
        primary.base_url()
    );
    let (url, gw) = start_gateway(
        &yaml,
        Options {
            allow_anonymous: true,
            ..Options::default()
        },
    )
    .await;
    let body = json!({"model": "tiny", "stream": true,
                      "messages": [{"role": "user", "content": "Say hello"}]});
    let text = post(&url, KEY, &body).await.text().await.unwrap();
    let events = support::sse_events(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "budget_exceeded", "{text}");
    let content: String = events[..events.len() - 1]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "Hello from the");
    assert_eq!(primary.requests()[0].body["max_tokens"], 3);
    let s = Setup {
        url,
        gw,
        primary,
        backup,
        ledger,
        _dir: dir,
    };
    let r = rows(&s);
    assert_eq!(r.len(), 1);
    // 9 prompt × $1/M + 3 completion × $1000/M, exactly the reservation.
    assert_eq!(
        (r[0].3.as_str(), r[0].4, r[0].5, r[0].6),
        ("budget_cut", 9, 3, 3_009_000)
    );
    let st = &s.gw.budgets.status().await.unwrap()[0];
    assert_eq!(
        (st.spent_usd.as_str(), st.reserved_usd.as_str()),
        ("0.003009", "0")
    );
}

#[tokio::test]
async fn cached_prompt_tokens_are_billed_at_the_cached_rate_streamed_or_not() {
    // gpt-4o from the catalog: $2.5/M input, $1.25/M cached input, $10/M
    // output. The upstream reports 4 of the 6 prompt tokens as cached.
    let up = Fake::start_with(fake_openai::Options {
        cached_tokens: Some(4),
        ..fake_openai::Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let yaml = format!(
        "version: 1\nledger: \"sqlite:{ledger}\"\nproviders:\n  up: {{ kind: openai, base_url: \"{}\", api_key: upstream-secret }}\nmodels:\n  gpt-4o: {{ provider: up }}\n",
        up.base_url()
    );
    let opts = Options {
        allow_anonymous: true,
        ..Options::default()
    };
    let (url, gw) = start_gateway(&yaml, opts).await;
    let mut body = json!({"model": "gpt-4o", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "Say hello"}]});
    let res = post(&url, KEY, &body).await;
    // 2 × $2.5/M + 4 × $1.25/M + 5 × $10/M = $0.00006 (not $0.000065).
    assert_eq!(res.headers()["x-tollgate-cost-usd"], "0.00006");
    body["stream"] = json!(true);
    let text = post(&url, KEY, &body).await.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(gw.ledger.as_ref().unwrap().flush(Duration::from_secs(5)));
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let mut stmt = conn
        .prepare("SELECT prompt_tokens, cached_tokens, completion_tokens, cost_nanos, certainty FROM tollgate_ledger ORDER BY ts, rowid")
        .unwrap();
    let rows: Vec<(i64, i64, i64, i64, String)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let billed = (6, 4, 5, 60_000, "exact".to_string());
    assert_eq!(
        rows,
        [billed.clone(), billed],
        "JSON and stream cost the same"
    );
}

/// An upstream that answers every request with the golden fixtures
/// (`tests/fixtures/usage/golden.json`), as JSON or as SSE.
async fn golden_upstream() -> String {
    use axum::extract::State;
    use axum::response::IntoResponse;
    let golden: Value = serde_json::from_str(include_str!("fixtures/usage/golden.json")).unwrap();
    let sse = |events: &Value, done: bool| {
        let mut body = String::new();
        for e in events.as_array().unwrap() {
            match e["type"].as_str() {
                Some(t) if !done => body.push_str(&format!("event: {t}\ndata: {e}\n\n")),
                _ => body.push_str(&format!("data: {e}\n\n")),
            }
        }
        if done {
            body.push_str("data: [DONE]\n\n");
        }
        ([("content-type", "text/event-stream")], body).into_response()
    };
    let answer = move |golden: &Value, req: &Value, chat: bool| {
        let stream = req["stream"] == json!(true);
        let audio = req["model"].as_str().is_some_and(|m| m.contains("audio"));
        match (chat, stream, audio) {
            (true, _, true) => axum::Json(golden["chat_audio"].clone()).into_response(),
            (true, false, _) => axum::Json(golden["chat"].clone()).into_response(),
            (true, true, _) => sse(&golden["chat_stream"], true),
            (false, false, _) => axum::Json(golden["responses"].clone()).into_response(),
            (false, true, _) => sse(&golden["responses_stream"], false),
        }
    };
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            axum::routing::post(
                move |State(g): State<Arc<Value>>, axum::Json(req): axum::Json<Value>| async move {
                    answer(&g, &req, true)
                },
            ),
        )
        .route(
            "/v1/responses",
            axum::routing::post(
                move |State(g): State<Arc<Value>>, axum::Json(req): axum::Json<Value>| async move {
                    answer(&g, &req, false)
                },
            ),
        )
        .with_state(Arc::new(golden));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn golden_usage_is_priced_to_the_nano_dollar_streamed_or_not_into_the_ledger() {
    let upstream = golden_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    // Both models from the built-in catalog: o4-mini ($1.10/M input,
    // $0.275/M cached input, $4.40/M output); gpt-4o-audio-preview ($2.50
    // and $10 for text, $40 and $80 for audio).
    let yaml = format!(
        "version: 1\nledger: \"sqlite:{ledger}\"\nproviders:\n  up: {{ kind: openai, base_url: \"{upstream}\", api_key: upstream-secret }}\nmodels:\n  o4-mini: {{ provider: up }}\n  gpt-4o-audio-preview: {{ provider: up }}\nkeys:\n  - {{ id: core-key, team: core, hash: \"{}\" }}\n  - {{ id: ops, team: platform, hash: \"{}\", admin: true }}\n",
        hash(KEY),
        hash(ADMIN_KEY)
    );
    let (url, gw) = start_gateway(&yaml, Options::default()).await;
    let client = reqwest::Client::new();
    let chat = json!({"model": "o4-mini", "messages": [{"role": "user", "content": "What is six times seven?"}]});
    let responses = json!({"model": "o4-mini", "input": "What is six times seven?"});
    // 86 × $1.10/M + 1,920 × $0.275/M + 300 × $4.40/M = $0.0019426.
    let golden_cost = "0.0019426";
    for (path, body) in [("chat/completions", &chat), ("responses", &responses)] {
        let res = client
            .post(format!("{url}/v1/{path}"))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["x-tollgate-cost-usd"], golden_cost, "{path}");
        let _ = res.bytes().await.unwrap();
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let text = client
            .post(format!("{url}/v1/{path}"))
            .bearer_auth(KEY)
            .json(&streamed)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("42."), "{path}: {text}");
    }
    let audio = json!({"model": "gpt-4o-audio-preview", "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "wav"},
        "messages": [{"role": "user", "content": "Say hello"}]});
    let res = post(&url, KEY, &audio).await;
    // 20 × $2.50/M + 100 × $40/M + 10 × $10/M + 70 × $80/M = $0.00975.
    assert_eq!(res.headers()["x-tollgate-cost-usd"], "0.00975");
    assert!(gw.ledger.as_ref().unwrap().flush(Duration::from_secs(5)));
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    // prompt, cached, completion, reasoning, audio in, audio out, cost,
    // certainty; and the price charged.
    let mut stmt = conn
        .prepare(
            "SELECT printf('%d %d %d %d %d %d %d %s', prompt_tokens, cached_tokens, \
             completion_tokens, reasoning_tokens, audio_prompt_tokens, audio_completion_tokens, \
             cost_nanos, certainty), price FROM tollgate_ledger ORDER BY ts, rowid",
        )
        .unwrap();
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let price = r#"{"input":1100000000,"output":4400000000,"cached_input":275000000}"#;
    let golden = (
        "2006 1920 300 192 0 0 1942600 exact".to_string(),
        price.to_string(),
    );
    assert_eq!(rows.len(), 5, "{rows:?}");
    for (i, r) in rows[..4].iter().enumerate() {
        assert_eq!(
            r, &golden,
            "row {i}: chat, chat stream, responses, responses stream"
        );
    }
    let audio_price = r#"{"input":2500000000,"output":10000000000,"audio_input":40000000000,"audio_output":80000000000}"#;
    assert_eq!(
        rows[4],
        (
            "120 0 80 0 100 70 9750000 exact".to_string(),
            audio_price.to_string()
        )
    );
    // The report shows the provider's prompt cache: 1,920 of 2,006 tokens
    // cached in each of the four, and what that saved at $0.825/M off.
    let report = admin_get(&url, "/admin/report?by=model&format=json").await;
    let r: Value = report.json().await.unwrap();
    let o4 = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["model"] == "o4-mini")
        .unwrap()
        .clone();
    assert_eq!(o4["cached_tokens"], 4 * 1920);
    assert_eq!(o4["cached_prompt_pct"], "95.7");
    // 4 × 1,920 × ($1.10 − $0.275)/M = $0.006336.
    assert_eq!(o4["prompt_cache_saved_usd"], "0.006336");
    assert_eq!(o4["reasoning_tokens"], 4 * 192);
}

#[tokio::test]
async fn a_model_without_a_price_is_charged_at_the_baselines_counted_and_listed() {
    let up = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let yaml = format!(
        "version: 1\nledger: \"sqlite:{ledger}\"\nproviders:\n  up: {{ kind: openai, base_url: \"{}\", api_key: upstream-secret }}\nmodels:\n  mystery-model: {{ provider: up }}\nkeys:\n  - {{ id: core-key, team: core, hash: \"{}\" }}\n  - {{ id: ops, team: platform, hash: \"{}\", admin: true }}\n",
        up.base_url(),
        hash(KEY),
        hash(ADMIN_KEY)
    );
    let p = tollgate::policy::load_str("acct.yaml", &yaml, Path::new("."), &|_| None).unwrap();
    assert_eq!(p.warnings().len(), 1, "{:?}", p.warnings());
    let (url, gw) = start_gateway(&yaml, Options::default()).await;
    let res = post(&url, KEY, &hello("mystery-model")).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let (p, c) = (
        body["usage"]["prompt_tokens"].as_u64().unwrap(),
        body["usage"]["completion_tokens"].as_u64().unwrap(),
    );
    // Not a silent $0: at gpt-4's $30/$60 per 1M, the baseline.
    let cost = (p * 30_000 + c * 60_000) as i64;
    assert!(gw.ledger.as_ref().unwrap().flush(Duration::from_secs(5)));
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let row: (i64, String) = conn
        .query_row(
            "SELECT cost_nanos, certainty FROM tollgate_ledger",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(row, (cost, "unpriced".to_string()));
    let metrics = tollgate::server::metrics_text(&gw).await;
    assert!(
        metrics.contains("tollgate_unpriced_requests_total{model=\"mystery-model\"} 1"),
        "{metrics}"
    );
    let r = admin_json(&url, "/admin/report?by=team&format=json").await;
    assert_eq!(
        r["unpriced"],
        json!([{"model": "mystery-model", "requests": 1}])
    );
    assert_eq!(r["total"]["unpriced_requests"], 1);
    let table = admin_get(&url, "/admin/report?by=team")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        table.contains("UNPRICED: mystery-model: 1 requests"),
        "{table}"
    );
}
