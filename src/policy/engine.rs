//! The local engine's settings: the paged-attention KV cache.

use super::fields::Errors;
use super::raw::RawKvCache;
use super::{KvCache, KvMemory};

/// Compiles `kv_cache:`; every bad value is an error naming its field.
pub(super) fn kv_cache(
    k: RawKvCache,
    local: bool,
    path: &str,
    errs: &mut Errors,
) -> Option<KvCache> {
    if !local {
        errs.add(path, "kv_cache applies to local models only");
        return None;
    }
    let number = |n: &serde_json::Number| n.as_f64().filter(|v| v.is_finite());
    let set = [
        k.memory_gb.is_some(),
        k.memory_fraction.is_some(),
        k.context_tokens.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        errs.add(
            path,
            "set exactly one of memory_gb, memory_fraction or context_tokens",
        );
        return None;
    }
    let memory = if let Some(gb) = &k.memory_gb {
        match number(gb) {
            Some(v) if v > 0.0 && v * 1024.0 <= f64::from(u32::MAX) => {
                KvMemory::Megabytes((v * 1024.0).round().max(1.0) as u32)
            }
            _ => {
                errs.add(
                    format!("{path}.memory_gb"),
                    format!("`{gb}` is not a positive number of GB"),
                );
                return None;
            }
        }
    } else if let Some(f) = &k.memory_fraction {
        match number(f) {
            Some(v) if v > 0.0 && v <= 1.0 => KvMemory::Fraction(v as f32),
            _ => {
                errs.add(
                    format!("{path}.memory_fraction"),
                    format!("`{f}` is not a fraction in (0, 1]"),
                );
                return None;
            }
        }
    } else {
        match k.context_tokens {
            Some(n) if n > 0 => KvMemory::Tokens(n),
            _ => {
                errs.add(format!("{path}.context_tokens"), "must be at least 1");
                return None;
            }
        }
    };
    let block_size = match k.block_size {
        None => 32,
        Some(b @ (8 | 16 | 32)) => b,
        Some(b) => {
            errs.add(
                format!("{path}.block_size"),
                format!("`{b}` is not a supported block size (8, 16 or 32)"),
            );
            return None;
        }
    };
    let f8 = match k.dtype.as_deref() {
        None | Some("auto") => false,
        Some("f8e4m3") => true,
        Some(d) => {
            errs.add(
                format!("{path}.dtype"),
                format!("unknown KV cache dtype `{d}` (expected auto or f8e4m3)"),
            );
            return None;
        }
    };
    Some(KvCache {
        memory,
        block_size,
        f8,
    })
}
