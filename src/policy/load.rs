//! Loading a policy file: YAML, then the raw types, then `compile()`, with
//! every problem reported as `file:line:col: path: message`.

use std::fmt;
use std::path::Path;

use super::{compile, raw, yaml, Policy};

/// One problem found in a policy, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub col: usize,
    pub path: String,
    pub message: String,
}

/// Every problem found while loading one policy file.
#[derive(Debug)]
pub struct LoadError {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let path = if d.path.is_empty() { "." } else { &d.path };
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, d.line, d.col, path, d.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Reads and compiles a policy file, expanding variables from the process
/// environment.
pub fn load_file(path: &Path) -> Result<Policy, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        file: file.clone(),
        diagnostics: vec![Diagnostic {
            line: 1,
            col: 1,
            path: String::new(),
            message: format!("cannot read file: {e}"),
        }],
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_str(&file, &text, base, &|name| std::env::var(name).ok())
}

/// Compiles policy text. `base` resolves relative file paths; `env` looks
/// up variables (tests pass their own).
pub fn load_str(
    file: &str,
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Policy, LoadError> {
    let err = |diagnostics| LoadError {
        file: file.to_string(),
        diagnostics,
    };
    let doc = yaml::parse(text).map_err(|e| {
        err(vec![Diagnostic {
            line: e.pos.line,
            col: e.pos.col,
            path: String::new(),
            message: format!("invalid YAML: {}", e.message),
        }])
    })?;
    let raw: raw::RawPolicy = serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let message = e.inner().to_string();
        // Point unknown keys at the key itself, not at its parent.
        if let Some(key) = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            if !path.ends_with(key) {
                path = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
            }
        }
        let pos = doc.position(&path);
        err(vec![Diagnostic {
            line: pos.line,
            col: pos.col,
            path,
            message,
        }])
    })?;
    compile(raw, base, env).map_err(|errors| {
        err(errors
            .into_iter()
            .map(|(path, message)| {
                let pos = doc.position(&path);
                Diagnostic {
                    line: pos.line,
                    col: pos.col,
                    path,
                    message,
                }
            })
            .collect())
    })
}
