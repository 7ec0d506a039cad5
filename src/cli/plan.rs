//! What the gateway would do with a prompt, offline: shared by
//! `classify`, `policy test` and `route calibrate`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::classify::counting::Counter;
use crate::classify::{classify_with, load_router, tokens, Class, Router, RouterLoad, Texts};
use crate::money::Nanos;
use crate::policy::Policy;
use crate::request::ChatRequest;
use crate::route::{route, Facts};

/// Which classifier the offline commands use, as `serve` does.
#[derive(clap::Args)]
pub struct RouterArgs {
    /// The learned router's directory (tokenizer.json and
    /// l2_supercat_256.safetensors, from scripts/fetch-test-model), a heads
    /// file written by `tollgate route fit` (its embedding is read from
    /// models/wordllama), or `off` for the keyword classifier.
    #[arg(
        long = "router",
        env = "TOLLGATE_ROUTER",
        default_value = "models/wordllama"
    )]
    pub dir: PathBuf,
}

impl RouterArgs {
    /// The router, `None` when it is off or its files are missing (said on
    /// stderr); unusable files are exit code 2.
    pub fn load(&self) -> Result<Option<Router>, ExitCode> {
        if self.dir.as_os_str() == "off" {
            return Ok(None);
        }
        match load_router(&self.dir) {
            RouterLoad::Loaded(r) => Ok(Some(*r)),
            RouterLoad::Missing(msg) => {
                eprintln!("note: {msg}");
                Ok(None)
            }
            RouterLoad::Broken(msg) => {
                eprintln!("error: {msg}");
                Err(ExitCode::from(2))
            }
        }
    }

    /// The router for a policy: its `router: { heads }` in place of the
    /// loaded heads when it names some and `--router` is the default.
    pub fn load_for(&self, policy: &Policy) -> Result<Option<Router>, ExitCode> {
        self.for_policy(self.load()?, policy)
    }

    /// `router` (from [`RouterArgs::load`]) as `load_for` gives it.
    pub fn for_policy(
        &self,
        router: Option<Router>,
        policy: &Policy,
    ) -> Result<Option<Router>, ExitCode> {
        match (&policy.router_heads, router) {
            (Some(h), Some(r)) if !self.dir.is_file() => {
                r.with_heads(h.heads.clone()).map(Some).map_err(|e| {
                    eprintln!("error: {}: {e}", h.path);
                    ExitCode::from(2)
                })
            }
            (_, r) => Ok(r),
        }
    }
}

/// Reads a prompts file (`-` is stdin); an unreadable one is exit code 2.
pub fn read_input(path: &Path) -> Result<String, ExitCode> {
    let read = if path.as_os_str() == "-" {
        let mut t = String::new();
        std::io::stdin().read_to_string(&mut t).map(|_| t)
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|e| {
        eprintln!("error: cannot read {}: {e}", path.display());
        ExitCode::from(2)
    })
}

/// The non-blank lines of `text`, with their 1-based line numbers.
pub fn input_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
}

/// One input line, `{"id", "prompt"}` or `{"id", "messages"}` (plus an
/// optional `max_tokens`), as a chat request for `model`.
pub fn parse_input(line: &str, model: &str) -> Result<(Value, ChatRequest), String> {
    let input: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    input_request(&input, model)
}

/// `parse_input` on a line already parsed.
pub fn input_request(input: &Value, model: &str) -> Result<(Value, ChatRequest), String> {
    let messages = match (&input["messages"], &input["prompt"]) {
        (Value::Array(m), _) => Value::Array(m.clone()),
        (_, Value::String(p)) => json!([{"role": "user", "content": p}]),
        _ => return Err("needs \"prompt\" (a string) or \"messages\" (an array)".into()),
    };
    let mut body = json!({"model": model, "messages": messages});
    if let Some(m) = input.get("max_tokens") {
        body["max_tokens"] = m.clone();
    }
    let chat = ChatRequest::parse(body.to_string().as_bytes()).map_err(|e| e.message)?;
    Ok((input.get("id").cloned().unwrap_or(Value::Null), chat))
}

/// The classification of a request, with prompt tokens counted.
pub fn class_of(chat: &ChatRequest, router: Option<&Router>) -> Class {
    let prompt_tokens = tokens::count_chat(chat.messages());
    classify_with(router, &Texts::of(chat).conversation(chat, prompt_tokens))
}

pub struct Plan {
    pub id: Value,
    pub class: Class,
    pub route: Option<String>,
    pub model: Option<String>,
    /// The prompt at the input price plus max_tokens at the output price;
    /// `None` with no route.
    pub cost: Option<Nanos>,
    /// The cost is an estimate: a GPU-hour model at its expected throughput.
    pub estimated: bool,
}

pub fn plan(
    policy: &Policy,
    router: Option<&Router>,
    model: &str,
    line: &str,
) -> Result<Plan, String> {
    let (id, chat) = parse_input(line, model)?;
    // As the gateway does: only routed requests ask the learned router.
    let class = class_of(
        &chat,
        router.filter(|_| crate::route::is_routed(policy, model)),
    );
    let facts = Facts {
        task: Some(class.task),
        complexity: Some(class.complexity),
        strong_score: Some(class.strong_score),
        prompt_tokens: Some(class.prompt_tokens),
    };
    let (route_name, model_name, cost) = match route(policy, model, &facts) {
        Ok(d) => {
            // The first model of the chain the request fits (prompt +
            // max_tokens within its context), as the gateway would pick;
            // offline, every model counts with cl100k.
            let needed = u64::from(class.prompt_tokens) + u64::from(chat.max_tokens.unwrap_or(1));
            let fits = |id: &usize| {
                policy.models[*id]
                    .context
                    .is_none_or(|c| needed <= u64::from(c))
            };
            let Some(&first) = d.chain.iter().find(|id| fits(id)) else {
                return Ok(Plan {
                    id,
                    class,
                    route: Some(d.rule),
                    model: None,
                    cost: None,
                    estimated: false,
                });
            };
            let m = &policy.models[first];
            let (price, estimated) = policy.estimate(first);
            // Counted as the model's budget reservation counts it.
            let prompt = match &m.counter {
                Counter::Cl100k => u64::from(class.prompt_tokens),
                c => c.chat(chat.messages(), chat.body.get("tools")),
            };
            let cost = price.cost(prompt, u64::from(chat.max_tokens.unwrap_or(0)));
            (Some(d.rule), Some(m.name.clone()), Some((cost, estimated)))
        }
        Err(_) => (None, None, None),
    };
    Ok(Plan {
        id,
        class,
        route: route_name,
        model: model_name,
        cost: cost.map(|c| c.0),
        estimated: cost.is_some_and(|c| c.1),
    })
}
