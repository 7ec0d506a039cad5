//! The cache key: a canonical hash of what determines an answer.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::Key;

/// The cache key of a request (its body, as parsed).
pub fn key(team: &str, chain: &[&str], body: &Map<String, Value>) -> Key {
    const IGNORED: &[&str] = &["model", "user", "metadata", "store", "stream_options"];
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let mut h = Sha256::new();
    h.update(b"tollgate-cache-v1\0");
    h.update(team.as_bytes());
    h.update(b"\0");
    for m in chain {
        h.update(m.as_bytes());
        h.update(b"\0");
    }
    // The body's fields in key order, without the ignored ones; `stream`
    // and `include_usage` always present, as booleans.
    let mut keys: Vec<&String> = body
        .keys()
        .filter(|k| !IGNORED.contains(&k.as_str()) && k.as_str() != "stream")
        .collect();
    keys.sort();
    let mut canon = String::new();
    for k in keys {
        canon.push_str(&Value::String(k.clone()).to_string());
        canon.push(':');
        write_sorted(&body[k.as_str()], &mut canon);
        canon.push(',');
    }
    canon.push_str(&format!("include_usage:{include_usage},stream:{stream}"));
    h.update(canon.as_bytes());
    h.finalize().into()
}

fn write_sorted(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_sorted(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_ignore_field_order_and_bookkeeping_but_not_meaning() {
        let a = json!({"model": "auto", "temperature": 0, "messages": [{"role": "user", "content": "hi"}],
                       "user": "u1", "tools": [{"type": "function", "function": {"name": "f", "parameters": {"a": 1, "b": 2}}}]});
        let b = json!({"tools": [{"function": {"parameters": {"b": 2, "a": 1}, "name": "f"}, "type": "function"}],
                       "messages": [{"content": "hi", "role": "user"}], "temperature": 0, "model": "gpt-4", "user": "u2"});
        let k = |team: &str, chain: &[&str], v: &Value| key(team, chain, v.as_object().unwrap());
        assert_eq!(k("web", &["gpt-4"], &a), k("web", &["gpt-4"], &b));
        // Another team, chain, tool, parameter or stream mode: another key.
        assert_ne!(k("web", &["gpt-4"], &a), k("data", &["gpt-4"], &a));
        assert_ne!(k("web", &["gpt-4"], &a), k("web", &["gpt-3.5-turbo"], &a));
        let mut c = a.clone();
        c["tools"][0]["function"]["name"] = json!("g");
        assert_ne!(k("web", &["gpt-4"], &a), k("web", &["gpt-4"], &c));
        let mut d = a.clone();
        d["top_p"] = json!(0.5);
        assert_ne!(k("web", &["gpt-4"], &a), k("web", &["gpt-4"], &d));
        let mut e = a.clone();
        e["stream"] = json!(true);
        assert_ne!(k("web", &["gpt-4"], &a), k("web", &["gpt-4"], &e));
    }

    #[test]
    fn random_reorderings_hash_alike() {
        use rand::seq::SliceRandom;
        let mut rng = rand::rng();
        let fields = [
            ("temperature", json!(0)),
            ("max_tokens", json!(20)),
            ("messages", json!([{"role": "user", "content": "x"}])),
            ("seed", json!(7)),
            ("stop", json!(["\n"])),
            ("response_format", json!({"type": "json_object"})),
        ];
        let reference = key(
            "t",
            &["m"],
            &fields
                .iter()
                .cloned()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        for _ in 0..200 {
            let mut f = fields.to_vec();
            f.shuffle(&mut rng);
            let v: Map<String, Value> = f.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(key("t", &["m"], &v), reference);
        }
    }
}
