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

/// The file's name as diagnostics show it, its text, and the directory
/// relative paths in it resolve against.
fn read(path: &Path) -> Result<(String, String, &Path), LoadError> {
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
    Ok((file, text, path.parent().unwrap_or(Path::new("."))))
}

/// Reads and compiles a policy file, expanding variables from the process
/// environment.
pub fn load_file(path: &Path) -> Result<Policy, LoadError> {
    let (file, text, base) = read(path)?;
    load_str(&file, &text, base, &|name| std::env::var(name).ok())
}

/// Reads and compiles a policy file for a command that calls no upstream
/// (`policy check`, `policy test`, `classify`, `route calibrate`,
/// `report`): a `${VAR}` that is unset and has no default reads as empty
/// (an API key that is empty makes its provider unavailable) instead of
/// failing the load, and each one is printed as a note: only `serve` needs
/// the secrets.
pub fn load_file_offline(path: &Path) -> Result<Policy, LoadError> {
    let (file, text, base) = read(path)?;
    let env = |name: &str| std::env::var(name).ok();
    let first = load_str(&file, &text, base, &env);
    let unset: Vec<String> = match &first {
        Ok(_) => return first,
        Err(e) => e
            .diagnostics
            .iter()
            .filter_map(|d| {
                d.message
                    .strip_prefix("environment variable ")?
                    .strip_suffix(" is not set")
                    .map(str::to_string)
            })
            .collect(),
    };
    if unset.is_empty() {
        return first;
    }
    for name in &unset {
        eprintln!("note: {file}: ${{{name}}} is not set; read as empty here (serve needs it)");
    }
    let empty =
        |name: &str| env(name).or_else(|| unset.iter().any(|u| u == name).then(String::new));
    load_str(&file, &text, base, &empty)
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
    // Positions are found only for a policy with something to report.
    let located = std::cell::OnceCell::new();
    let position = |path: &str| {
        located
            .get_or_init(|| yaml::parse_with_positions(text).unwrap_or_default())
            .position(path)
    };
    // An unknown key is reported and taken out, and the rest is read
    // again, so one run lists every unknown key and then every other
    // error; any other shape error stops the reading there.
    let mut diagnostics = Vec::new();
    // Read plainly first, from the document itself: its strings move into
    // the raw types and the rest is freed as it is read. Only a policy
    // with something wrong is parsed again, to track the path of what is.
    let plain = <raw::RawPolicy as serde::Deserialize>::deserialize(doc.value).ok();
    let raw = plain.or_else(|| {
        let mut value = yaml::parse(text).map(|d| d.value).unwrap_or_default();
        loop {
            let e = match serde_path_to_error::deserialize::<_, raw::RawPolicy>(&value) {
                Ok(raw) => break Some(raw),
                Err(e) => e,
            };
            let mut segments: Vec<String> = e.path().iter().map(|s| s.to_string()).collect();
            let message = e.inner().to_string();
            let unknown = message
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next())
                .map(str::to_string);
            // Point unknown keys at the key itself, not at its parent.
            if let Some(key) = &unknown {
                if segments.last() != Some(key) {
                    segments.push(key.clone());
                }
            }
            let path = join(&segments);
            let pos = position(&path);
            diagnostics.push(Diagnostic {
                line: pos.line,
                col: pos.col,
                path,
                message,
            });
            let removed =
                unknown.is_some() && diagnostics.len() < 100 && remove(&mut value, &segments);
            if !removed {
                break None;
            }
        }
    });
    let compiled = match raw {
        Some(raw) => compile(raw, base, env),
        None => return Err(err(diagnostics)),
    };
    match compiled {
        Ok(policy) if diagnostics.is_empty() => Ok(policy),
        Ok(_) => Err(err(diagnostics)),
        Err(errors) => {
            diagnostics.extend(errors.into_iter().map(|(path, message)| {
                let pos = position(&path);
                Diagnostic {
                    line: pos.line,
                    col: pos.col,
                    path,
                    message,
                }
            }));
            Err(err(diagnostics))
        }
    }
}

/// `providers.openai.api_key`, `routes[1].when`: the path as diagnostics
/// (and `Document::position`) write it.
fn join(segments: &[String]) -> String {
    let mut out = String::new();
    for s in segments {
        if s.starts_with('[') || out.is_empty() {
            out.push_str(s);
        } else {
            out.push('.');
            out.push_str(s);
        }
    }
    out
}

/// Removes the key at `segments` (map keys, or `[i]` for list items).
fn remove(v: &mut serde_json::Value, segments: &[String]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut cur = v;
    for s in parents {
        let next = match s.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
            Some(i) => i.parse::<usize>().ok().and_then(|i| cur.get_mut(i)),
            None => cur.get_mut(s.as_str()),
        };
        let Some(next) = next else {
            return false;
        };
        cur = next;
    }
    cur.as_object_mut()
        .is_some_and(|m| m.remove(last.as_str()).is_some())
}
