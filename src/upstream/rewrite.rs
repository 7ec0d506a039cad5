//! Rewriting an OpenAI response object on its way to the client: `model`
//! becomes the policy model's name and `usage` is read out, without
//! parsing the rest deeply.

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
