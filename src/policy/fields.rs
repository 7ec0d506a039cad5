//! What every part of policy compilation shares: the error list, and the
//! parsers of field values (durations, sizes, comparisons, hashes, URLs).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::raw::{ByteSize, Comparison};
use super::{Cmp, CmpOp};

/// Collects `(path, message)` pairs.
#[derive(Default)]
pub(super) struct Errors(pub(super) Vec<(String, String)>);

impl Errors {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    /// Records the error of `r`, if any, and passes the value on.
    pub(super) fn ok<T>(&mut self, path: impl Into<String>, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| self.add(path, m)).ok()
    }
}

pub(super) fn parse_names<T: std::str::FromStr<Err = String>>(
    errs: &mut Errors,
    path: &str,
    names: Vec<String>,
) -> Vec<T> {
    names
        .into_iter()
        .enumerate()
        .filter_map(|(j, n)| errs.ok(format!("{path}[{j}]"), n.parse()))
        .collect()
}

pub(super) fn unknown_model(name: &str, declared: &HashSet<String>) -> String {
    let mut known: Vec<&str> = declared.iter().map(String::as_str).collect();
    known.sort_unstable();
    format!(
        "unknown model `{name}` (declared: {})",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

pub(super) fn resolve(base: &Path, file: &str) -> String {
    let p = Path::new(file);
    if p.is_absolute() || p.exists() {
        file.to_string()
    } else {
        // Relative to the working directory if it exists there (the usual
        // `tollgate serve` from the repo root), else to the policy file.
        let beside = base.join(p);
        if beside.exists() {
            beside.display().to_string()
        } else {
            file.to_string()
        }
    }
}

pub(super) fn check_url(u: &str) -> Result<(), String> {
    if u.starts_with("http://") || u.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("`{u}` is not an http(s) URL"))
    }
}

pub(super) fn parse_cmp(c: Comparison) -> Result<Cmp, String> {
    let text = match c {
        Comparison::Number(n) => format!(">= {n}"),
        Comparison::Text(t) => t,
    };
    let t = text.trim();
    let (op, rest) = [
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("==", CmpOp::Eq),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ]
    .into_iter()
    .find_map(|(s, op)| t.strip_prefix(s).map(|r| (op, r)))
    .ok_or_else(|| format!("`{t}` is not a comparison like \">= 0.6\""))?;
    let value = rest
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("`{t}` is not a comparison like \">= 0.6\""))?;
    Ok(Cmp { op, value })
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 30s: {e}"))
}

pub(super) fn parse_byte_size(size: &ByteSize) -> Result<usize, String> {
    let n = match size {
        ByteSize::Bytes(n) => *n,
        ByteSize::Text(t) => {
            let t = t.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let mult = match unit.trim() {
                "" | "B" => 1,
                "KiB" | "K" => 1 << 10,
                "MiB" | "M" => 1 << 20,
                "GiB" | "G" => 1 << 30,
                u => return Err(format!("unknown size unit `{u}` (use B, KiB, MiB)")),
            };
            num.parse::<u64>()
                .map_err(|_| format!("`{t}` is not a size like 1MiB"))?
                * mult
        }
    };
    if n == 0 {
        return Err("must be more than 0 bytes".into());
    }
    usize::try_from(n).map_err(|_| "too large".into())
}

pub(super) fn parse_hash(h: &str) -> Result<[u8; 32], String> {
    let hex_part = h
        .strip_prefix("sha256:")
        .ok_or("key hashes start with `sha256:` (use `tollgate key new`)")?;
    let bytes = hex::decode(hex_part).map_err(|_| "not a hex SHA-256 digest".to_string())?;
    bytes
        .try_into()
        .map_err(|_| "a SHA-256 digest has 64 hex digits".to_string())
}
