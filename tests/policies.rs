//! Every policy shipped in `policies/` and `examples/` compiles.
#![allow(clippy::unwrap_used)]

use std::path::Path;

fn env(name: &str) -> Option<String> {
    // The shipped policies may require these; give them values so the test
    // checks the policy, not the machine's environment.
    matches!(name, "OPENAI_API_KEY").then(|| "sk-test".to_string())
}

#[test]
fn every_shipped_policy_compiles() {
    let mut checked = 0;
    for dir in ["policies", "examples"] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let base = path.parent().unwrap();
                if let Err(e) =
                    tollgate::policy::load_str(&path.display().to_string(), &text, base, &env)
                {
                    panic!("{e}");
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 4,
        "expected the shipped policies, found {checked}"
    );
}

#[test]
fn the_default_policy_runs_without_an_api_key() {
    let text = std::fs::read_to_string("policies/default.yaml").unwrap();
    let p = tollgate::policy::load_str("default.yaml", &text, Path::new("policies"), &|_| None)
        .unwrap();
    assert!(
        p.keys.is_none(),
        "the embedded default is the anonymous demo"
    );
    let openai = p.providers.iter().find(|p| p.name == "openai").unwrap();
    match &openai.kind {
        tollgate::policy::ProviderKind::OpenAi {
            api_key, base_url, ..
        } => {
            assert!(api_key.is_none());
            assert_eq!(base_url, "https://api.openai.com/v1");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_error_is_reported_at_once_with_its_position() {
    let text = "version: 1
providers:
  up: { kind: openai, api_key: \"${NOPE}\", timeout: soon }
models:
  a: { provider: up, price: { output: 1 } }
  b: { provider: nowhere, price: { input: 1, output: 1 } }
aliases: { auto: router }
routes:
  - name: r
    when: { task: [poetry], strong_score: \">= 2\" }
    to: a
    fallback: [zzz]
keys:
  - { id: k, team: t, hash: \"md5:abc\" }
  - { id: k, team: t, hash: \"sha256:0000000000000000000000000000000000000000000000000000000000000000\", models: [nope] }
";
    let err = tollgate::policy::load_str("bad.yaml", text, Path::new("."), &|_| None).unwrap_err();
    let shown = err.to_string();
    let expected = [
        "bad.yaml:3:",
        "providers.up.api_key: environment variable NOPE is not set",
        "providers.up.timeout: `soon` is not a duration",
        "bad.yaml:5:",
        "models.a.price: give both `input` and `output`",
        "bad.yaml:6:",
        "models.b.provider: unknown provider `nowhere`",
        "routes[0].fallback[0]: unknown model `zzz`",
        "routes[0].when.task[0]: unknown task `poetry`",
        "routes[0].when.strong_score: strong_score is between 0 and 1",
        "keys[0].hash: key hashes start with `sha256:`",
        "keys[1].id: duplicate key id `k`",
        "keys[1].models[0]: `nope` is neither a model nor an alias",
    ];
    for e in expected {
        assert!(shown.contains(e), "missing `{e}` in:\n{shown}");
    }
    assert!(err.diagnostics.len() >= 8, "{shown}");
}

#[test]
fn unknown_keys_are_rejected_where_they_are() {
    let text = "version: 1\nmodels:\n  a:\n    provider: p\n    prise: { input: 1 }\n";
    let err = tollgate::policy::load_str("typo.yaml", text, Path::new("."), &|_| None).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with("typo.yaml:5:5: models.a.prise: unknown field `prise`"),
        "{shown}"
    );
}

#[test]
fn a_gpu_hour_price_has_an_expected_throughput_for_estimates() {
    let policy = |price: &str| {
        format!(
            "version: 1\nproviders:\n  local: {{ kind: local }}\n  up: {{ kind: openai, base_url: \"http://127.0.0.1:1/v1\", api_key: k }}\nmodels:\n  small: {{ provider: local, file: m.gguf, price: {price} }}\n  cloud: {{ provider: up, price: {{ input: 1, output: 2, generation_per_s: 5 }} }}\n"
        )
    };
    let load = |price: &str| {
        tollgate::policy::load_str("p.yaml", &policy(price), Path::new("."), &|_| None)
    };
    // Bad values name their field; throughput is for gpu_hour models only.
    let e = load("{ gpu_hour: 2, prefill_per_s: -3 }")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "models.small.price.prefill_per_s: `-3` is not a positive number of tokens per second"
        ),
        "{e}"
    );
    assert!(
        e.contains("models.cloud.price: prefill_per_s and generation_per_s go with gpu_hour"),
        "{e}"
    );
    // Defaults: the last measured figures. $3.6/h at 1,000 tok/s prefill is
    // $1 per 1M prompt tokens.
    let text =
        policy("{ gpu_hour: 3.6, prefill_per_s: 1000 }").replace(", generation_per_s: 5", "");
    let p = tollgate::policy::load_str("p.yaml", &text, Path::new("."), &|_| None).unwrap();
    let (price, estimated) = p.model("small").unwrap().pricing.estimate();
    assert!(estimated);
    assert_eq!(price.input_per_mtok, tollgate::money::Nanos(1_000_000_000));
    let measured = tollgate::policy::Throughput::MEASURED.generation_milli;
    let per_token = 3_600_000_000u128 * 1_000_000 * 1000 / (3600 * u128::from(measured));
    assert_eq!(
        u128::from(price.output_per_mtok.0),
        per_token + 1,
        "rounded up to the nano-dollar"
    );
}

#[test]
fn the_budget_counting_settings_are_checked_and_compiled() {
    let text = r#"
version: 1
providers:
  up: { kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: k, chat_only: true }
  local: { kind: local, chat_only: true }
models:
  a: { provider: up, price: { input: 1, output: 1 }, tokenizer: sentencepiece }
  b: { provider: up, price: { input: 1, output: 1 }, max_output: 0 }
  c: { provider: up, price: { input: 1, output: 1 }, tokenizer: /no/such/tokenizer.json }
"#;
    let err = tollgate::policy::load_str("t.yaml", text, Path::new("."), &|_| None)
        .unwrap_err()
        .to_string();
    for want in [
        "models.a.tokenizer",
        "unknown tokenizer `sentencepiece`",
        "models.b.max_output",
        "models.c.tokenizer",
        "/no/such/tokenizer.json",
        "`chat_only` does not apply to kind `local`",
    ] {
        assert!(err.contains(want), "{want} missing from: {err}");
    }
    let text = r#"
version: 1
providers:
  up: { kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: k, chat_only: true }
models:
  gpt-4o: { provider: up, price: { input: 1, output: 1 } }
  llama: { provider: up, upstream_model: meta-llama/Llama-3.1-8B, price: { input: 1, output: 1 }, max_output: 512 }
  forced: { provider: up, upstream_model: gpt-4o, price: { input: 1, output: 1 }, tokenizer: cl100k }
"#;
    let p = tollgate::policy::load_str("t.yaml", text, Path::new("."), &|_| None).unwrap();
    let counter = |name: &str| p.models[p.model_ids[name]].counter.name();
    assert_eq!(counter("gpt-4o"), "o200k");
    assert_eq!(counter("llama"), "bytes");
    assert_eq!(counter("forced"), "cl100k");
    assert_eq!(p.models[p.model_ids["llama"]].max_output, Some(512));
    assert!(matches!(
        p.providers[0].kind,
        tollgate::policy::ProviderKind::OpenAi {
            chat_only: true,
            ..
        }
    ));
}

#[test]
fn the_ledger_journal_defaults_beside_a_sqlite_ledger() {
    let journal = |lines: &str| {
        let text = format!(
            "version: 1\nproviders:\n  up: {{ kind: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: k }}\n\
             models:\n  gpt-4: {{ provider: up }}\n{lines}"
        );
        tollgate::policy::load_str("t.yaml", &text, Path::new("."), &|_| None)
            .map(|p| p.ledger_journal)
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        journal("ledger: sqlite:/data/l.sqlite\n")
            .unwrap()
            .as_deref(),
        Some("/data/l.sqlite.journal")
    );
    assert_eq!(journal("ledger: postgres://u@db/x\n").unwrap(), None);
    assert_eq!(
        journal("ledger: postgres://u@db/x\nledger_journal: /var/lib/tg\n")
            .unwrap()
            .as_deref(),
        Some("/var/lib/tg")
    );
    assert_eq!(journal("ledger_journal: none\n").unwrap(), None);
    let err = journal("ledger_journal: \"\"\n").unwrap_err();
    assert!(
        err.contains("ledger_journal") && err.contains("a directory or `none`"),
        "{err}"
    );
}

#[test]
fn the_engine_settings_are_checked_and_compiled() {
    let model = |settings: &str| {
        format!(
            "version: 1\nproviders:\n  local: {{ kind: local, device: cpu }}\n  up: {{ kind: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: k }}\n\
             models:\n  m: {{ provider: local, file: m.gguf, price: {{ input: 0, output: 0 }}{settings} }}\n\
             \x20 gpt-4: {{ provider: up }}\n"
        )
    };
    let load = |text: &str| tollgate::policy::load_str("t.yaml", text, Path::new("."), &|_| None);
    let p = load(&model(
        ", kv_cache: { memory_gb: 1.5, block_size: 16 }, prefix_cache: 0",
    ))
    .unwrap();
    let m = &p.models[p.model_ids["m"]];
    assert_eq!(m.prefix_cache, 0);
    let k = m.kv_cache.unwrap();
    assert_eq!(
        (k.memory, k.block_size, k.f8),
        (tollgate::policy::KvMemory::Megabytes(1536), 16, false)
    );
    let p = load(&model(
        ", kv_cache: { memory_fraction: 0.9, dtype: f8e4m3 }",
    ))
    .unwrap();
    let m = &p.models[p.model_ids["m"]];
    assert_eq!(m.prefix_cache, 16, "the default");
    let k = m.kv_cache.unwrap();
    assert_eq!(
        (k.memory, k.block_size, k.f8),
        (tollgate::policy::KvMemory::Fraction(0.9), 32, true)
    );
    for (settings, field, why) in [
        (
            ", kv_cache: { memory_gb: 0 }",
            "models.m.kv_cache.memory_gb",
            "not a positive number of GB",
        ),
        (
            ", kv_cache: { memory_fraction: 1.5 }",
            "models.m.kv_cache.memory_fraction",
            "not a fraction in (0, 1]",
        ),
        (
            ", kv_cache: { context_tokens: 0 }",
            "models.m.kv_cache.context_tokens",
            "must be at least 1",
        ),
        (
            ", kv_cache: { memory_gb: 4, block_size: 64 }",
            "models.m.kv_cache.block_size",
            "8, 16 or 32",
        ),
        (
            ", kv_cache: { memory_gb: 4, dtype: f16 }",
            "models.m.kv_cache.dtype",
            "unknown KV cache dtype `f16`",
        ),
        (
            ", kv_cache: { memory_gb: 4, memory_fraction: 0.5 }",
            "models.m.kv_cache",
            "exactly one of",
        ),
        (", kv_cache: {}", "models.m.kv_cache", "exactly one of"),
        (
            ", kv_cache: { memory_gb: 4, size: 1 }",
            "models.m.kv_cache",
            "size",
        ),
    ] {
        let err = load(&model(settings)).unwrap_err().to_string();
        assert!(
            err.contains(field) && err.contains(why),
            "{settings}: {err}"
        );
    }
    let cloud = "version: 1\nproviders:\n  up: { kind: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: k }\n\
                 models:\n  gpt-4: { provider: up, kv_cache: { memory_gb: 1 }, prefix_cache: 4 }\n";
    let err = load(cloud).unwrap_err().to_string();
    assert!(
        err.contains("kv_cache applies to local models only"),
        "{err}"
    );
    assert!(
        err.contains("prefix_cache applies to local models only"),
        "{err}"
    );
}
