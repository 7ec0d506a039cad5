//! Rewriting an OpenAI response object on its way to the client: `model`
//! becomes the policy model's name and `usage` is read out, without
//! parsing the rest deeply.
//!
//! `splice` does it without building the object again: it reads only the
//! spans of `model`, `usage` and `choices` and copies the bytes around
//! them, so a stream chunk that needs no change goes out as it came.

use serde_json::value::RawValue;
use serde_json::Value;

use super::Usage;

type Fields<'a> = indexmap::IndexMap<&'a str, &'a RawValue>;

/// The rewritten object (`None`: nothing to forward) and the usage it carried.
type Rewritten = (Option<Vec<u8>>, Option<Usage>);

/// Rewrites an OpenAI response object without parsing it deeply: `model`
/// becomes the policy model's name and `usage` is read out. With
/// `drop_usage`, the `usage` field is removed and a chunk that only
/// carried usage (empty `choices`) is not forwarded (`None` body), though
/// its usage is still returned. Values are
/// copied through byte for byte.
pub(super) fn rewrite(data: &[u8], model: &str, drop_usage: bool) -> Result<Rewritten, String> {
    let name = serde_json::to_string(model).map_err(|e| e.to_string())?;
    if let Some((out, usage)) = splice(data, &name, drop_usage, (b"", b"")) {
        let body = match out {
            Spliced::Unchanged => Some(data.to_vec()),
            Spliced::Rewritten(b) => Some(b),
            Spliced::Dropped => None,
        };
        return Ok((body, usage));
    }
    rewrite_map(data, model, drop_usage)
}

/// What `splice` made of an object.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Spliced {
    /// Forward the bytes as they came.
    Unchanged,
    /// The new bytes, wrapped as asked.
    Rewritten(Vec<u8>),
    /// Nothing to forward: a usage-only chunk the client did not ask for.
    Dropped,
}

/// The top-level fields the rewrite reads, as spans of the input.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    model: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    choices: Option<&'a RawValue>,
}

/// `Some` for a field that is there, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

/// `rewrite` by splicing (`name`: the model's name as a JSON string):
/// the object comes back unchanged, with `model` replaced, or with the
/// `usage` field cut out (`drop_usage`); the rewritten bytes are wrapped
/// in `wrap` (an SSE frame's `data: ` and blank line), in one allocation.
/// `None` when only the full rewrite can tell (not an object with plain
/// keys, a repeated key).
pub(super) fn splice(
    data: &[u8],
    name: &str,
    drop_usage: bool,
    wrap: (&[u8], &[u8]),
) -> Option<(Spliced, Option<Usage>)> {
    let head: Head = serde_json::from_slice(data).ok()?;
    if !data.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    let span = |r: &RawValue| {
        let start = (r.get().as_ptr() as usize).checked_sub(data.as_ptr() as usize)?;
        (start + r.get().len() <= data.len()).then_some((start, start + r.get().len()))
    };
    let usage = head
        .usage
        .filter(|u| u.get() != "null")
        .and_then(|u| serde_json::from_str::<Value>(u.get()).ok())
        .and_then(|u| Usage::from_json(&u));
    // (start, end, replacement), in order.
    let mut edits: Vec<(usize, usize, &[u8])> = Vec::new();
    if let Some(m) = head.model.filter(|m| m.get() != name) {
        let (start, end) = span(m)?;
        edits.push((start, end, name.as_bytes()));
    }
    if drop_usage && head.choices.is_some_and(|c| c.get().trim() == "[]") {
        return Some((Spliced::Dropped, usage));
    }
    if let Some(u) = head.usage.filter(|_| drop_usage) {
        let (start, end) = field_span(data, span(u)?, b"\"usage\"")?;
        edits.push((start, end, b""));
        edits.sort_unstable_by_key(|e| e.0);
    }
    if edits.is_empty() {
        return Some((Spliced::Unchanged, usage));
    }
    let mut out = Vec::with_capacity(data.len() + name.len() + wrap.0.len() + wrap.1.len());
    out.extend_from_slice(wrap.0);
    let mut at = 0;
    for (start, end, with) in edits {
        out.extend_from_slice(data.get(at..start)?);
        out.extend_from_slice(with);
        at = end;
    }
    out.extend_from_slice(data.get(at..)?);
    out.extend_from_slice(wrap.1);
    Some((Spliced::Rewritten(out), usage))
}

/// The bytes to cut to remove a top-level field whose value spans
/// `value`: its key (written plainly as `key`), the colon, the value and
/// one comma beside it. `None` when the key is not written plainly.
fn field_span(data: &[u8], (vstart, vend): (usize, usize), key: &[u8]) -> Option<(usize, usize)> {
    let back = |mut i: usize| {
        while i > 0 && data[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        i
    };
    let colon = back(vstart);
    if colon == 0 || data[colon - 1] != b':' {
        return None;
    }
    let kend = back(colon - 1);
    let kstart = kend.checked_sub(key.len())?;
    if data.get(kstart..kend)? != key {
        return None;
    }
    let before = back(kstart);
    match data.get(before.checked_sub(1)?)? {
        b',' => Some((before - 1, vend)),
        b'{' => {
            let mut after = vend;
            while data.get(after).is_some_and(u8::is_ascii_whitespace) {
                after += 1;
            }
            Some((kstart, after + usize::from(data.get(after) == Some(&b','))))
        }
        _ => None,
    }
}

/// The full rewrite: every top-level field read and written again (what
/// `splice` cannot tell).
pub(super) fn rewrite_map(data: &[u8], model: &str, drop_usage: bool) -> Result<Rewritten, String> {
    let mut fields: Fields = match serde_json::from_slice(data) {
        Ok(f) => f,
        // Keys with escapes cannot be borrowed; take the slow path.
        Err(_) => return rewrite_value(data, model, drop_usage),
    };
    let usage = fields
        .get("usage")
        .and_then(|u| serde_json::from_str::<Value>(u.get()).ok())
        .and_then(|u| Usage::from_json(&u));
    if drop_usage {
        fields.shift_remove("usage");
        if fields
            .get("choices")
            .is_some_and(|c| c.get().trim() == "[]")
        {
            return Ok((None, usage));
        }
    }
    let name = serde_json::value::to_raw_value(model).map_err(|e| e.to_string())?;
    if fields.contains_key("model") {
        fields.insert("model", &name);
    }
    serde_json::to_vec(&fields)
        .map(|b| (Some(b), usage))
        .map_err(|e| e.to_string())
}

fn rewrite_value(data: &[u8], model: &str, drop_usage: bool) -> Result<Rewritten, String> {
    let mut v: Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let obj = v.as_object_mut().ok_or("not a JSON object")?;
    let usage = obj.get("usage").and_then(Usage::from_json);
    if drop_usage {
        obj.remove("usage");
        if obj
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            return Ok((None, usage));
        }
    }
    if obj.contains_key("model") {
        obj.insert("model".into(), Value::String(model.to_string()));
    }
    serde_json::to_vec(&v)
        .map(|b| (Some(b), usage))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
