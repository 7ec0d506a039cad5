use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::stream::Translator;
use super::*;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/responses/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

#[test]
fn requests_translate_to_their_chat_equivalents() {
    let f = fixture("requests.json");
    for case in f["cases"].as_array().unwrap() {
        let (ask, chat) = parse(&bytes(&case["responses"])).unwrap();
        assert_eq!(
            Value::Object(chat.body.clone()),
            case["chat"],
            "{}",
            case["name"]
        );
        assert!(ask.upstream_only.is_none(), "{}", case["name"]);
        assert_eq!(Value::Object(ask.body), case["responses"]);
    }
}

#[test]
fn the_chat_equivalent_keeps_what_the_gateway_reads() {
    let f = fixture("requests.json");
    let (ask, chat) = parse(&bytes(&f["cases"][1]["responses"])).unwrap();
    assert_eq!(chat.max_tokens, Some(64));
    assert_eq!(ask.max_output_tokens(), Some(64));
    assert_eq!(chat.temperature, Some(0.2));
    let (ask, chat) = parse(&bytes(&f["cases"][4]["responses"])).unwrap();
    assert!(ask.stream && chat.stream && chat.include_usage);
    let up: Value = serde_json::from_slice(&ask.upstream_body("gpt-4.1-2025-04-14")).unwrap();
    let mut sent = f["cases"][4]["responses"].clone();
    sent["model"] = json!("gpt-4.1-2025-04-14");
    assert_eq!(up, sent, "a Responses upstream gets the body as sent");
}

#[test]
fn upstream_state_is_named_with_its_field() {
    let f = fixture("requests.json");
    for case in f["upstream_only"].as_array().unwrap() {
        if case["param"] == "background" {
            // Billed after the request ends: refused, named by its field.
            let e = parse(&bytes(&case["responses"])).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("background"));
            continue;
        }
        let (ask, _) = parse(&bytes(&case["responses"])).unwrap();
        let (what, param) = ask.upstream_only.expect("upstream only");
        assert_eq!(json!(param), case["param"], "{what}");
        assert!(!what.is_empty());
    }
}

#[test]
fn bad_requests_name_the_field() {
    let f = fixture("requests.json");
    for case in f["invalid"].as_array().unwrap() {
        let e = parse(&bytes(&case["responses"])).unwrap_err();
        assert_eq!(json!(e.param), case["param"], "{}", e.message);
    }
    let e = parse(b"[1]").unwrap_err();
    assert!(e.message.contains("JSON object"));
}

#[test]
fn chat_answers_become_responses_objects() {
    let f = fixture("replies.json");
    for case in f["cases"].as_array().unwrap() {
        let (ask, _) = parse(&bytes(&case["request"])).unwrap();
        let out = reply::from_chat(&bytes(&case["chat"]), &ask).unwrap();
        let got: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(got, case["response"], "{}", case["name"]);
    }
}

/// Splits `event: X\ndata: Y\n\n` frames into (X, Y).
fn events(frames: &[Bytes]) -> Vec<(String, Value)> {
    frames
        .iter()
        .map(|f| {
            let s = std::str::from_utf8(f).unwrap();
            let (head, data) = s.split_once("\ndata: ").unwrap();
            let kind = head.strip_prefix("event: ").unwrap().to_string();
            (kind, serde_json::from_str(data.trim_end()).unwrap())
        })
        .collect()
}

fn chunk(delta: Value, finish: Value) -> Vec<u8> {
    let c = json!({"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "smart", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n").into_bytes()
}

fn run(ask: &Ask, frames: Vec<Vec<u8>>) -> Vec<(String, Value)> {
    let mut t = Translator::new(Arc::new(ask.clone()));
    let mut out = Vec::new();
    for f in frames {
        out.extend(t.on_frame(&f));
    }
    assert!(t.done);
    events(&out)
}

/// Rebuilds the response as the official SDKs' stream helpers do: from
/// `response.created`, each `output_item.added`, `content_part.added` and
/// delta; every event must find the item and part it refers to.
fn accumulate(evs: &[(String, Value)]) -> Value {
    let mut snap = Value::Null;
    for (i, (kind, e)) in evs.iter().enumerate() {
        assert_eq!(e["type"], json!(kind));
        assert_eq!(e["sequence_number"], json!(i));
        let at = e["output_index"].as_u64().unwrap_or(0) as usize;
        match kind.as_str() {
            "response.created" => snap = e["response"].clone(),
            "response.output_item.added" => snap["output"]
                .as_array_mut()
                .unwrap()
                .push(e["item"].clone()),
            "response.content_part.added" => snap["output"][at]["content"]
                .as_array_mut()
                .unwrap()
                .push(e["part"].clone()),
            "response.output_text.delta" => {
                let part = &mut snap["output"][at]["content"][0]["text"];
                *part = json!(format!(
                    "{}{}",
                    part.as_str().unwrap(),
                    e["delta"].as_str().unwrap()
                ));
            }
            "response.function_call_arguments.delta" => {
                let args = &mut snap["output"][at]["arguments"];
                *args = json!(format!(
                    "{}{}",
                    args.as_str().unwrap(),
                    e["delta"].as_str().unwrap()
                ));
            }
            "response.output_item.done" => snap["output"][at] = e["item"].clone(),
            _ => {}
        }
    }
    snap
}

#[test]
fn a_text_stream_becomes_response_events_in_order() {
    let (ask, _) = parse(br#"{"model":"smart","input":"Hi","stream":true}"#).unwrap();
    let usage = json!({"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "smart", "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}});
    let evs = run(
        &ask,
        vec![
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hello"}), Value::Null),
            chunk(json!({"content": " there"}), Value::Null),
            chunk(json!({}), json!("stop")),
            format!("data: {usage}\n\n").into_bytes(),
            b"data: [DONE]\n\n".to_vec(),
        ],
    );
    let kinds: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let done = &evs.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["id"], "resp_s1");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello there");
    assert_eq!(done["usage"]["input_tokens"], 9);
    assert_eq!(done["usage"]["output_tokens"], 2);
    assert_eq!(evs[6].1["text"], "Hello there");
    assert_eq!(evs[0].1["response"]["status"], "in_progress");
    assert_eq!(accumulate(&evs)["output"], done["output"]);
}

#[test]
fn a_tool_call_stream_becomes_function_call_items() {
    let (ask, _) = parse(br#"{"model":"smart","input":"Weather?","stream":true}"#).unwrap();
    let call = |id: Value, name: Value, args: &str, index: u64| {
        let mut f = json!({"arguments": args});
        if !name.is_null() {
            f["name"] = name;
        }
        let mut c = json!({"index": index, "function": f});
        if !id.is_null() {
            c["id"] = id;
            c["type"] = json!("function");
        }
        chunk(json!({"tool_calls": [c]}), Value::Null)
    };
    let evs = run(
        &ask,
        vec![
            chunk(json!({"role": "assistant", "content": null}), Value::Null),
            call(json!("call_1"), json!("get_weather"), "", 0),
            call(Value::Null, Value::Null, "{\"location\":", 0),
            call(Value::Null, Value::Null, "\"Paris\"}", 0),
            call(json!("call_2"), json!("get_time"), "{}", 1),
            chunk(json!({}), json!("tool_calls")),
            b"data: [DONE]\n\n".to_vec(),
        ],
    );
    let done = &evs.last().unwrap().1["response"];
    assert_eq!(evs.last().unwrap().0, "response.completed");
    assert_eq!(
        done["output"],
        json!([
            {"id": "fc_call_1", "type": "function_call", "status": "completed", "call_id": "call_1",
             "name": "get_weather", "arguments": "{\"location\":\"Paris\"}"},
            {"id": "fc_call_2", "type": "function_call", "status": "completed", "call_id": "call_2",
             "name": "get_time", "arguments": "{}"}
        ])
    );
    assert!(done["usage"].is_null(), "no usage chunk was sent");
    let snap = accumulate(&evs);
    assert_eq!(snap["output"], done["output"]);
    let arg_done: Vec<&Value> = evs
        .iter()
        .filter(|(k, _)| k == "response.function_call_arguments.done")
        .map(|(_, e)| &e["arguments"])
        .collect();
    assert_eq!(arg_done, [&json!("{\"location\":\"Paris\"}"), &json!("{}")]);
}

#[test]
fn a_cut_stream_is_incomplete_and_errors_pass_through() {
    let (ask, _) = parse(br#"{"model":"smart","input":"Hi","stream":true}"#).unwrap();
    let evs = run(
        &ask,
        vec![
            chunk(json!({"content": "One"}), Value::Null),
            chunk(json!({}), json!("length")),
            b"data: [DONE]\n\n".to_vec(),
        ],
    );
    let (kind, last) = evs.last().unwrap();
    assert_eq!(kind, "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );

    let mut t = Translator::new(Arc::new(ask));
    t.on_frame(&chunk(json!({"content": "One"}), Value::Null));
    let err = b"data: {\"error\":{\"message\":\"x\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";
    let out = t.on_frame(err);
    assert_eq!(out, vec![Bytes::from_static(err)]);
    assert!(t.done);
}
