//! Providers, models and prices: the raw entries compiled and checked.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::catalog;
use super::env::expand;
use super::fields::{check_url, parse_duration, resolve, Errors};
use super::raw::{RawModel, RawPrice, RawProvider};
use super::{Device, Model, Pricing, Provider, ProviderKind, Throughput};
use crate::classify::counting::Counter;
use crate::money::{Nanos, Price};
use crate::secret::Secret;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(600);

pub(super) fn compile_provider(
    name: &str,
    p: RawProvider,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Errors,
) -> Option<ProviderKind> {
    let path = format!("providers.{name}");
    let not_for = |errs: &mut Errors, field: &str, present: bool, kind: &str| {
        if present {
            errs.add(
                format!("{path}.{field}"),
                format!("`{field}` does not apply to kind `{kind}`"),
            );
        }
    };
    match p.kind.as_str() {
        kind @ ("openai" | "anthropic") => {
            not_for(errs, "device", p.device.is_some(), kind);
            let anthropic = kind == "anthropic";
            not_for(errs, "chat_only", anthropic && p.chat_only.is_some(), kind);
            not_for(
                errs,
                "anthropic_version",
                !anthropic && p.anthropic_version.is_some(),
                kind,
            );
            let base_url = match p.base_url {
                None if anthropic => Some("https://api.anthropic.com".to_string()),
                None => Some("https://api.openai.com/v1".to_string()),
                Some(u) => errs
                    .ok(format!("{path}.base_url"), expand(&u, env))
                    .and_then(|u| {
                        errs.ok(format!("{path}.base_url"), check_url(&u))
                            .map(|()| u)
                    }),
            };
            let api_key = match p.api_key {
                None => Some(None),
                Some(k) => errs
                    .ok(format!("{path}.api_key"), expand(&k, env))
                    .map(|k| (!k.is_empty()).then(|| Secret::new(k))),
            };
            let mut duration = |field: &str, v: Option<String>, default: Duration| match v {
                None => Some(default),
                Some(t) => errs.ok(format!("{path}.{field}"), parse_duration(&t)),
            };
            let timeout = duration("timeout", p.timeout, DEFAULT_TIMEOUT);
            let connect_timeout = duration(
                "connect_timeout",
                p.connect_timeout,
                DEFAULT_CONNECT_TIMEOUT,
            );
            let total_timeout = duration("total_timeout", p.total_timeout, DEFAULT_TOTAL_TIMEOUT);
            Some(ProviderKind::OpenAi {
                base_url: base_url?.trim_end_matches('/').to_string(),
                api_key: api_key?,
                timeout: timeout?,
                connect_timeout: connect_timeout?,
                total_timeout: total_timeout?,
                chat_only: p.chat_only.unwrap_or(false) || anthropic,
                anthropic: anthropic.then(|| {
                    p.anthropic_version
                        .unwrap_or_else(|| "2023-06-01".to_string())
                }),
            })
        }
        "local" => {
            not_for(errs, "base_url", p.base_url.is_some(), "local");
            not_for(errs, "api_key", p.api_key.is_some(), "local");
            not_for(errs, "timeout", p.timeout.is_some(), "local");
            not_for(
                errs,
                "connect_timeout",
                p.connect_timeout.is_some(),
                "local",
            );
            not_for(errs, "total_timeout", p.total_timeout.is_some(), "local");
            not_for(errs, "chat_only", p.chat_only.is_some(), "local");
            not_for(
                errs,
                "anthropic_version",
                p.anthropic_version.is_some(),
                "local",
            );
            let device = match p.device.as_deref() {
                None | Some("auto") => Some(Device::Auto),
                Some("cpu") => Some(Device::Cpu),
                Some(d) => match d.strip_prefix("cuda:").map(str::parse::<usize>) {
                    Some(Ok(n)) => Some(Device::Cuda(n)),
                    _ => {
                        errs.add(
                            format!("{path}.device"),
                            format!("unknown device `{d}` (expected auto, cpu or cuda:N)"),
                        );
                        None
                    }
                },
            };
            Some(ProviderKind::Local { device: device? })
        }
        other => {
            errs.add(
                format!("{path}.kind"),
                format!("unknown provider kind `{other}` (expected openai, anthropic or local)"),
            );
            None
        }
    }
}

pub(super) fn compile_model(
    name: &str,
    m: RawModel,
    provider_ids: &HashMap<String, usize>,
    provider_names: &HashSet<String>,
    providers: &[Provider],
    (base, cat): (&Path, &catalog::Catalog),
    errs: &mut Errors,
) -> Option<Model> {
    let path = format!("models.{name}");
    if name == "router" || name.is_empty() {
        errs.add(&path, format!("`{name}` is not allowed as a model name"));
    }
    let provider = provider_ids.get(&m.provider).copied();
    if provider.is_none() && !provider_names.contains(&m.provider) {
        errs.add(
            format!("{path}.provider"),
            format!("unknown provider `{}`", m.provider),
        );
    }
    // An invalid provider still lets the rest of the model be checked.
    let local = provider.is_some_and(|p| matches!(providers[p].kind, ProviderKind::Local { .. }))
        || m.file.is_some() && provider.is_none();
    let upstream_model = m.upstream_model.unwrap_or_else(|| name.to_string());
    let known = if local {
        None
    } else {
        cat.lookup(&upstream_model)
    };
    let pricing = match (m.price, &known) {
        (Some(p), _) => compile_price(p, &format!("{path}.price"), local, errs),
        (None, Some(k)) => Some(Pricing::PerToken(k.price)),
        // Loads, with a warning (`Policy::warnings`): its answers are
        // charged at the baseline's price and marked `unpriced`.
        (None, None) if !local => Some(Pricing::Unknown),
        (None, None) => {
            errs.add(
                format!("{path}.price"),
                "a local model needs a price (`{ input: 0, output: 0 }` for free, or `gpu_hour`)",
            );
            None
        }
    };
    let file = match (local, m.file) {
        (true, None) => {
            errs.add(
                format!("{path}.file"),
                "a local model needs `file:` (a GGUF path)",
            );
            None
        }
        (true, Some(f)) => Some(resolve(base, &f)),
        (false, Some(_)) => {
            errs.add(format!("{path}.file"), "only local models take `file:`");
            None
        }
        (false, None) => None,
    };
    let chat_template = m.chat_template.map(|t| {
        if !(t.ends_with(".jinja") || t.ends_with(".json")) {
            errs.add(
                format!("{path}.chat_template"),
                "must be a path to a .jinja or .json template file",
            );
        }
        resolve(base, &t)
    });
    if !local && (m.max_concurrency.is_some() || m.max_queue.is_some()) {
        errs.add(
            &path,
            "max_concurrency and max_queue apply to local models only",
        );
    }
    if m.max_concurrency == Some(0) {
        errs.add(format!("{path}.max_concurrency"), "must be at least 1");
    }
    if m.context == Some(0) {
        errs.add(format!("{path}.context"), "must be at least 1");
    }
    if m.max_output == Some(0) {
        errs.add(format!("{path}.max_output"), "must be at least 1");
    }
    let setting = m.tokenizer.map(|t| {
        if t.ends_with(".json") {
            resolve(base, &t)
        } else {
            t
        }
    });
    let kv_cache = m
        .kv_cache
        .and_then(|k| super::engine::kv_cache(k, local, &format!("{path}.kv_cache"), errs));
    if !local && m.prefix_cache.is_some() {
        errs.add(
            format!("{path}.prefix_cache"),
            "prefix_cache applies to local models only",
        );
    }
    let counter = errs.ok(
        format!("{path}.tokenizer"),
        Counter::for_model(&upstream_model, setting.as_deref()),
    );
    Some(Model {
        name: name.to_string(),
        provider: provider?,
        upstream_model,
        pricing: pricing?,
        context: m.context.or(known.as_ref().and_then(|k| k.context)),
        file,
        chat_template,
        max_concurrency: m.max_concurrency.unwrap_or(4),
        max_queue: m.max_queue.unwrap_or(64),
        counter: counter?,
        max_output: m.max_output.or(known.and_then(|k| k.max_output)),
        kv_cache,
        prefix_cache: m.prefix_cache.unwrap_or(16),
    })
}

pub(super) fn compile_price(
    p: RawPrice,
    path: &str,
    local: bool,
    errs: &mut Errors,
) -> Option<Pricing> {
    let mut usd = |field: &str, n: Option<serde_json::Number>| {
        n.map(|n| errs.ok(format!("{path}.{field}"), Nanos::parse_usd(&n.to_string())))
    };
    let input = usd("input", p.input);
    let output = usd("output", p.output);
    let cached = usd("cached_input", p.cached_input);
    let write = usd("cache_write", p.cache_write);
    let audio_in = usd("audio_input", p.audio_input);
    let audio_out = usd("audio_output", p.audio_output);
    let gpu_hour = usd("gpu_hour", p.gpu_hour);
    for (field, v) in [
        ("cached_input", &cached),
        ("cache_write", &write),
        ("audio_input", &audio_in),
    ] {
        if v.is_some() && input.is_none() {
            errs.add(format!("{path}.{field}"), "goes with `input`");
        }
    }
    if audio_out.is_some() && output.is_none() {
        errs.add(format!("{path}.audio_output"), "goes with `output`");
    }
    let parts = |input_per_mtok: Nanos, output_per_mtok: Nanos| Price {
        input_per_mtok,
        output_per_mtok,
        cached_input_per_mtok: cached.flatten(),
        cache_write_per_mtok: write.flatten(),
        audio_input_per_mtok: audio_in.flatten(),
        audio_output_per_mtok: audio_out.flatten(),
    };
    let mut rate = |field: &str, n: Option<serde_json::Number>, default: u64| -> Option<u64> {
        let Some(n) = n else { return Some(default) };
        match n.as_f64().filter(|v| v.is_finite() && *v > 0.0 && *v < 1e9) {
            Some(v) => Some(((v * 1000.0).round() as u64).max(1)),
            None => {
                errs.add(
                    format!("{path}.{field}"),
                    format!("`{n}` is not a positive number of tokens per second"),
                );
                None
            }
        }
    };
    let expected = match (
        rate(
            "prefill_per_s",
            p.prefill_per_s.clone(),
            Throughput::MEASURED.prefill_milli,
        ),
        rate(
            "generation_per_s",
            p.generation_per_s.clone(),
            Throughput::MEASURED.generation_milli,
        ),
    ) {
        (Some(prefill_milli), Some(generation_milli)) => Some(Throughput {
            prefill_milli,
            generation_milli,
        }),
        _ => None,
    };
    if gpu_hour.is_none() && (p.prefill_per_s.is_some() || p.generation_per_s.is_some()) {
        errs.add(path, "prefill_per_s and generation_per_s go with gpu_hour");
    }
    match (input, output, gpu_hour) {
        (Some(i), Some(o), None) => Some(Pricing::PerToken(parts(i?, o?))),
        // Embedding models bill input tokens only.
        (Some(i), None, None) => Some(Pricing::PerToken(parts(i?, Nanos::ZERO))),
        (None, None, Some(g)) if local => Some(Pricing::GpuHour {
            per_hour: g?,
            expected: expected?,
        }),
        (None, None, Some(_)) => {
            errs.add(
                format!("{path}.gpu_hour"),
                "gpu_hour pricing applies to local models only",
            );
            None
        }
        _ => {
            errs.add(
                path,
                "give both `input` and `output` (USD per 1M tokens), `input` alone (embedding \
                 models), or `gpu_hour` alone",
            );
            None
        }
    }
}
