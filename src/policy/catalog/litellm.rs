//! Reads the model catalog LiteLLM publishes
//! (`model_prices_and_context_window.json`): one object per model name,
//! with USD per token (`input_cost_per_token`, `output_cost_per_token`,
//! `cache_read_input_token_cost`, `cache_creation_input_token_cost`,
//! `input_cost_per_audio_token`, `output_cost_per_audio_token`) and
//! windows (`max_input_tokens`, `max_output_tokens`).
//!
//! Entries billed otherwise (images, seconds of audio, characters) and
//! modes other than chat, completion, responses and embedding are
//! skipped; an entry whose token fields are there but wrong (a string, a
//! negative price) is an error naming the entry and field. Per-token
//! prices become nano-dollars per 1M tokens from the number's decimal
//! text, so `2.5e-06` is exactly $2.50 per 1M.

use std::collections::HashMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Known;
use crate::money::{Nanos, Price};

/// What an import read.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub entries: HashMap<String, Known>,
    /// Entries left out: not billed per token, or not a text mode.
    pub skipped: usize,
    /// The file's SHA-256, hex: what a policy pins.
    pub sha256: String,
}

const MODES: [&str; 5] = [
    "chat",
    "completion",
    "responses",
    "embedding",
    "text-completion",
];

/// Reads `bytes` (from `origin`, for the entries' `source`). With `pin`,
/// the file's SHA-256 must equal it. Errors list every bad entry.
pub fn import(bytes: &[u8], origin: &str, pin: Option<&str>) -> Result<Imported, Vec<String>> {
    let sha256 = hex::encode(Sha256::digest(bytes));
    if let Some(p) = pin {
        if !p.eq_ignore_ascii_case(&sha256) {
            return Err(vec![format!(
                "{origin}: SHA-256 is {sha256}, the policy pins {p}"
            )]);
        }
    }
    let root: Value =
        serde_json::from_slice(bytes).map_err(|e| vec![format!("{origin}: not JSON: {e}")])?;
    let Value::Object(models) = root else {
        return Err(vec![format!("{origin}: expected an object of model names")]);
    };
    let as_of = modified(origin);
    let mut out = Imported {
        sha256,
        ..Imported::default()
    };
    let mut errs = Vec::new();
    for (name, v) in &models {
        if name == "sample_spec" {
            continue;
        }
        match entry(name, v, origin, &as_of) {
            Ok(Some(k)) => {
                out.entries.insert(name.clone(), k);
            }
            Ok(None) => out.skipped += 1,
            Err(e) => errs.push(format!("{origin}: `{name}`: {e}")),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    if out.entries.is_empty() {
        return Err(vec![format!("{origin}: no entry is priced per token")]);
    }
    Ok(out)
}

/// The file's modification day, as the entries' "as of".
fn modified(path: &str) -> String {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| crate::clock::day_string(d.as_millis() as i64))
        .unwrap_or_default()
}

fn entry(name: &str, v: &Value, origin: &str, as_of: &str) -> Result<Option<Known>, String> {
    let Value::Object(o) = v else {
        return Err("expected an object".into());
    };
    if let Some(mode) = o.get("mode") {
        match mode.as_str() {
            Some(m) if MODES.contains(&m) => {}
            Some(_) => return Ok(None),
            None => return Err("`mode` is not a string".into()),
        }
    }
    let rate = |field: &str| -> Result<Option<Nanos>, String> {
        match o.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => per_mtok(&n.to_string())
                .map(Some)
                .ok_or_else(|| format!("`{field}` is `{n}`: not a price (USD per token, 0 to 1)")),
            Some(other) => Err(format!("`{field}` is `{other}`: not a number")),
        }
    };
    let window = |field: &str| -> Result<Option<u32>, String> {
        match o.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .map(Some)
                .ok_or_else(|| format!("`{field}` is `{n}`: not a positive token count")),
            // LiteLLM writes a few windows as text; they are not read.
            Some(Value::String(_)) => Ok(None),
            Some(other) => Err(format!("`{field}` is `{other}`: not a number")),
        }
    };
    let Some(input) = rate("input_cost_per_token")? else {
        return Ok(None);
    };
    let output = rate("output_cost_per_token")?.unwrap_or(Nanos::ZERO);
    let price = Price {
        input_per_mtok: input,
        output_per_mtok: output,
        cached_input_per_mtok: rate("cache_read_input_token_cost")?,
        cache_write_per_mtok: rate("cache_creation_input_token_cost")?,
        audio_input_per_mtok: rate("input_cost_per_audio_token")?,
        audio_output_per_mtok: rate("output_cost_per_audio_token")?,
    };
    let context = window("max_input_tokens")?.or(window("max_tokens")?);
    let provider = match o.get("litellm_provider") {
        Some(Value::String(p)) => p.clone(),
        _ => String::new(),
    };
    Ok(Some(Known {
        name: name.to_string(),
        provider,
        price,
        context,
        max_output: window("max_output_tokens")?,
        source: origin.to_string(),
        as_of: as_of.to_string(),
    }))
}

/// USD per token as decimal text (`2.5e-06`, `0.000002`) in nano-dollars
/// per 1M tokens (× 10^15), rounded to the nearest; `None` when it is
/// negative, not a number, or over $1 a token.
fn per_mtok(text: &str) -> Option<Nanos> {
    let (mantissa, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.starts_with('-') || !(int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return None;
    }
    let value: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    // value × 10^(exp − len(frac) + 15)
    let shift = exp - i32::try_from(frac.len()).ok()? + 15;
    let nanos = if shift >= 0 {
        value.checked_mul(10u128.checked_pow(u32::try_from(shift).ok()?)?)?
    } else {
        let d = 10u128
            .checked_pow(u32::try_from(-shift).ok()?)
            .unwrap_or(u128::MAX);
        (value + d / 2) / d
    };
    // At most $1 a token: $1M per 1M tokens.
    (nanos <= 1_000_000 * 1_000_000_000).then_some(Nanos(u64::try_from(nanos).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_becomes_exact_nanos_per_million() {
        assert_eq!(per_mtok("2.5e-06"), Some(Nanos(2_500_000_000)));
        assert_eq!(per_mtok("0.000002"), Some(Nanos(2_000_000_000)));
        assert_eq!(per_mtok("1.25E-7"), Some(Nanos(125_000_000)));
        assert_eq!(per_mtok("0"), Some(Nanos(0)));
        assert_eq!(per_mtok("3"), None, "over $1 a token");
        assert_eq!(per_mtok("-1e-06"), None);
        assert_eq!(per_mtok("1e-20"), Some(Nanos(0)));
    }

    #[test]
    fn reads_token_priced_entries_skips_the_rest_and_names_bad_ones() {
        let file = br#"{
          "sample_spec": {"input_cost_per_token": "price"},
          "gpt-4.1": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
             "cache_read_input_token_cost": 5e-07, "max_input_tokens": 1047576,
             "max_output_tokens": 32768, "litellm_provider": "openai", "mode": "chat"},
          "text-embedding-3-small": {"input_cost_per_token": 2e-08, "mode": "embedding"},
          "dall-e-3": {"mode": "image_generation", "input_cost_per_pixel": 1e-08},
          "tts-1": {"mode": "audio_speech", "input_cost_per_character": 1.5e-05}
        }"#;
        let got = import(file, "prices.json", None).unwrap();
        assert_eq!(got.skipped, 2);
        let k = &got.entries["gpt-4.1"];
        assert_eq!(k.price.input_per_mtok, Nanos(2_000_000_000));
        assert_eq!(k.price.cached_input_per_mtok, Some(Nanos(500_000_000)));
        assert_eq!((k.context, k.max_output), (Some(1_047_576), Some(32_768)));
        assert_eq!(
            got.entries["text-embedding-3-small"].price.output_per_mtok,
            Nanos(0)
        );
        // The pin is checked.
        let wrong = import(file, "prices.json", Some("00")).unwrap_err();
        assert!(wrong[0].contains("SHA-256"), "{wrong:?}");
        assert!(import(file, "prices.json", Some(&got.sha256)).is_ok());
        // Bad entries are named with their field.
        let bad = br#"{"m": {"input_cost_per_token": "2e-06"}, "n": {"input_cost_per_token": -1}}"#;
        let errs = import(bad, "p.json", None).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs
            .iter()
            .any(|e| e.contains("`m`") && e.contains("input_cost_per_token")));
        assert!(import(b"[1]", "p.json", None).is_err());
        assert!(import(br#"{"x": {"mode": "image_generation"}}"#, "p.json", None).is_err());
    }
}
