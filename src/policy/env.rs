//! `${VAR}` and `${VAR:-default}` expansion in policy strings.
//!
//! Secrets stay out of policy files: they name an environment variable. A
//! variable that is unset and has no default is an error naming it, so a
//! deployment that forgot a secret fails at startup, not on the first call.

/// Expands every `${...}` in `text`; `$$` is a literal `$`.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let end = body
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in `{text}`"))?;
        let expr = &body[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("`${{{expr}}}` is not a valid variable reference"));
        }
        // `:-` also replaces an empty value, as in the shell.
        let value = lookup(name).filter(|v| !v.is_empty() || default.is_none());
        match (value, default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_and_defaults() {
        assert_eq!(expand("${KEY}", &env).unwrap(), "sk-1");
        assert_eq!(expand("a-${KEY}-b", &env).unwrap(), "a-sk-1-b");
        assert_eq!(
            expand("${BASE:-https://api.openai.com/v1}", &env).unwrap(),
            "https://api.openai.com/v1"
        );
        assert_eq!(expand("${EMPTY:-x}", &env).unwrap(), "x");
        assert_eq!(expand("${MISSING:-}", &env).unwrap(), "");
        assert_eq!(expand("cost $$5", &env).unwrap(), "cost $5");
    }

    #[test]
    fn missing_variable_names_it() {
        let err = expand("${OPENAI_API_KEY}", &env).unwrap_err();
        assert_eq!(err, "environment variable OPENAI_API_KEY is not set");
        assert!(expand("${oops", &env).is_err());
        assert!(expand("${a b}", &env).is_err());
    }
}
