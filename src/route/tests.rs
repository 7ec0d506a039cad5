//! Unit tests of `route`.

use super::*;
use crate::policy::load_str;
use std::path::Path;

const POLICY: &str = r#"
version: 1
providers:
  up: { kind: openai, base_url: "http://127.0.0.1:1/v1", api_key: k }
models:
  big: { provider: up, price: { input: 30, output: 60 } }
  small: { provider: up, price: { input: 1.5, output: 2 } }
aliases: { auto: router }
routes:
  - name: hard
    when: { task: [code, math], complexity: high }
    to: big
    fallback: [small]
  - name: scored
    when: { strong_score: ">= 0.7" }
    to: big
  - name: pin-big
    when: { model: big, prompt_tokens: "> 1000" }
    to: small
  - name: default
    to: small
"#;

fn policy() -> Policy {
    load_str("t.yaml", POLICY, Path::new("."), &|_| None).unwrap()
}

#[test]
fn alias_routes_by_facts() {
    let p = policy();
    let hard = Facts {
        task: Some(Task::Code),
        complexity: Some(Complexity::High),
        ..Facts::default()
    };
    let d = route(&p, "auto", &hard).unwrap();
    assert_eq!(d.rule, "hard");
    assert_eq!(d.chain, vec![p.model_ids["big"], p.model_ids["small"]]);
    assert_eq!(d.reason, "rule hard: task=code, complexity=high");

    let scored = Facts {
        strong_score: Some(0.8),
        ..Facts::default()
    };
    assert_eq!(route(&p, "auto", &scored).unwrap().rule, "scored");
    // Missing facts never satisfy a condition.
    assert_eq!(
        route(&p, "auto", &Facts::default()).unwrap().rule,
        "default"
    );
}

#[test]
fn only_aliases_and_models_a_route_names_are_routed() {
    let p = policy();
    assert!(is_routed(&p, "auto"));
    assert!(is_routed(&p, "big"), "pin-big names it");
    assert!(!is_routed(&p, "small"));
    assert!(!is_routed(&p, "unknown"));
}

#[test]
fn concrete_models_are_rerouted_only_by_routes_naming_them() {
    let p = policy();
    let d = route(&p, "big", &Facts::default()).unwrap();
    assert_eq!(
        (d.rule.as_str(), d.chain.clone()),
        ("direct", vec![p.model_ids["big"]])
    );
    let long = Facts {
        prompt_tokens: Some(2000),
        ..Facts::default()
    };
    assert_eq!(route(&p, "big", &long).unwrap().rule, "pin-big");
    assert_eq!(route(&p, "small", &long).unwrap().rule, "direct");
    assert_eq!(
        route(&p, "gpt-9", &long).unwrap_err(),
        RouteError::UnknownModel
    );
}
