//! `tollgate prices`: the per-token prices the gateway knows, where each
//! came from and as of when; `tollgate prices import` checks a LiteLLM
//! catalog file before a policy imports it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::money::{Nanos, Price};
use crate::policy::catalog::{import, Catalog, Known};
use crate::policy::{load_file_offline, Pricing};

#[derive(Args)]
/// List the built-in price catalog (USD per 1M tokens), with each entry's
/// source and "as of" date. With --config, the catalog as that policy sees
/// it (its `prices:` import over the built-ins), then the price each of its
/// models is charged at.
///
/// Examples:
///   tollgate prices
///   tollgate prices --config policies/default.yaml --format json
///   tollgate prices import model_prices_and_context_window.json
pub struct PricesArgs {
    #[command(subcommand)]
    command: Option<PricesCommand>,
    /// A policy whose catalog and models to list.
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Subcommand)]
enum PricesCommand {
    /// Check a catalog in LiteLLM's format (model_prices_and_context_window.json)
    /// and print its SHA-256 and the `prices:` block that imports it. Exits 1,
    /// naming each bad entry, when it cannot be imported.
    Import {
        file: PathBuf,
        /// Refuse the file unless its SHA-256 is this (hex).
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

pub fn run(args: PricesArgs) -> ExitCode {
    if let Some(PricesCommand::Import {
        file,
        sha256,
        format,
    }) = args.command
    {
        return import_file(&file, sha256.as_deref(), format);
    }
    let Some(path) = args.config else {
        print(&Catalog::default().all(), args.format);
        return ExitCode::SUCCESS;
    };
    let policy = match load_file_offline(&path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    print(&policy.catalog.all(), args.format);
    let models: Vec<Known> = policy
        .models
        .iter()
        .map(|m| {
            let listed = policy.catalog.lookup(&m.upstream_model);
            let (price, source) = match (m.pricing, &listed) {
                (Pricing::PerToken(p), Some(k)) if p == k.price => (p, k.source.clone()),
                (Pricing::PerToken(p), _) => (p, "policy".to_string()),
                (Pricing::GpuHour { .. }, _) => {
                    (policy.estimate_of(m).0, "policy gpu_hour (estimate)".into())
                }
                (Pricing::Unknown, _) => (
                    policy.baseline.price,
                    "UNPRICED: charged at the baseline's".into(),
                ),
            };
            Known {
                name: m.name.clone(),
                provider: policy.providers[m.provider].name.clone(),
                price,
                context: m.context,
                max_output: m.max_output,
                source,
                as_of: listed.map(|k| k.as_of).unwrap_or_default(),
            }
        })
        .collect();
    if args.format == Format::Table {
        out(&format!("\nmodels of {}:\n", path.display()));
    }
    print(&models, args.format);
    for w in policy.warnings() {
        eprintln!("warning: {w}");
    }
    ExitCode::SUCCESS
}

fn import_file(file: &std::path::Path, pin: Option<&str>, format: Format) -> ExitCode {
    let origin = file.display().to_string();
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {origin}: {e}");
            return ExitCode::from(2);
        }
    };
    match import(&bytes, &origin, pin) {
        Ok(got) => {
            let mut entries: Vec<Known> = got.entries.into_values().collect();
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            print(&entries, format);
            eprintln!(
                "{origin}: {} entries priced per token, {} skipped (not billed per token)\n\
                 sha256: {}\nimport it with:\n  prices: {{ file: {origin}, sha256: {} }}",
                entries.len(),
                got.skipped,
                got.sha256,
                got.sha256
            );
            ExitCode::SUCCESS
        }
        Err(errs) => {
            for e in errs {
                eprintln!("error: {e}");
            }
            ExitCode::from(1)
        }
    }
}

/// USD per 1M tokens, or "" for a part billed as plain input or output.
fn per_m(n: Option<Nanos>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

/// Writes to stdout, quietly stopping when the reader has gone (`| head`).
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn print(entries: &[Known], format: Format) {
    let mut text = String::new();
    render(&mut text, entries, format);
    out(&text);
}

fn render(s: &mut String, entries: &[Known], format: Format) {
    use std::fmt::Write;
    match format {
        Format::Json => {
            for k in entries {
                let p: &Price = &k.price;
                let _ = writeln!(
                    s,
                    "{}",
                    json!({
                        "model": k.name, "provider": k.provider,
                        "input_usd_per_mtok": p.input_per_mtok.to_string(),
                        "output_usd_per_mtok": p.output_per_mtok.to_string(),
                        "cached_input_usd_per_mtok": p.cached_input_per_mtok.map(|n| n.to_string()),
                        "cache_write_usd_per_mtok": p.cache_write_per_mtok.map(|n| n.to_string()),
                        "audio_input_usd_per_mtok": p.audio_input_per_mtok.map(|n| n.to_string()),
                        "audio_output_usd_per_mtok": p.audio_output_per_mtok.map(|n| n.to_string()),
                        "context": k.context, "max_output": k.max_output,
                        "source": k.source, "as_of": k.as_of,
                    })
                );
            }
        }
        Format::Table => {
            let _ = writeln!(
                s,
                "{:<28} {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}  {:<10} source",
                "model",
                "provider",
                "input",
                "output",
                "cached",
                "c.write",
                "audio.in",
                "audio.out",
                "context",
                "max.out",
                "as of"
            );
            for k in entries {
                let p = &k.price;
                let _ = writeln!(
                    s,
                    "{:<28} {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}  {:<10} {}",
                    k.name,
                    k.provider,
                    p.input_per_mtok.to_string(),
                    p.output_per_mtok.to_string(),
                    per_m(p.cached_input_per_mtok),
                    per_m(p.cache_write_per_mtok),
                    per_m(p.audio_input_per_mtok),
                    per_m(p.audio_output_per_mtok),
                    k.context.map(|c| c.to_string()).unwrap_or_default(),
                    k.max_output.map(|c| c.to_string()).unwrap_or_default(),
                    k.as_of,
                    k.source
                );
            }
        }
    }
}
