//! Unit tests of `anthropic`, on the shapes of Anthropic's API reference.

use super::stream::Translator;
use super::*;

fn map(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn a_chat_request_becomes_a_messages_request() {
    let chat = map(
        json!({"model": "claude", "max_tokens": 64, "user": "u-1", "stop": "END",
        "temperature": 0.2, "parallel_tool_calls": false, "tool_choice": "required",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "dry"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}),
    );
    let m = request(&chat, "claude-sonnet-4-5", 64).unwrap();
    assert_eq!(m["system"], json!([{"type": "text", "text": "Be brief."}]));
    assert_eq!(m["max_tokens"], 64);
    assert_eq!(m["stop_sequences"], json!(["END"]));
    assert_eq!(m["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(
        m["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        m["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    let msgs = m["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert_eq!(
        msgs[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBOR"})
    );
    assert_eq!(
        msgs[1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}})
    );
    // Both tool results in one user turn.
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"][1]["tool_use_id"], "call_2");
    assert_eq!(untranslatable(&chat), None);
    let n = map(json!({"n": 2, "messages": []}));
    assert_eq!(untranslatable(&n).unwrap().1, "n");
    let schema = map(json!({"response_format": {"type": "json_schema"}, "messages": []}));
    assert_eq!(untranslatable(&schema).unwrap().1, "response_format");
    let audio = map(json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}));
    assert!(request(&audio, "m", 1).is_err());
}

#[test]
fn a_messages_answer_becomes_a_chat_completion_with_every_usage_part() {
    let answer = json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 20, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 3000, "output_tokens": 40}});
    let (chat, usage) = reply(answer.to_string().as_bytes(), "sonnet").unwrap();
    assert_eq!(chat["model"], "sonnet");
    assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chat["choices"][0]["message"]["content"], "Checking.");
    assert_eq!(
        chat["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    let u = usage.unwrap();
    assert_eq!(
        (
            u.prompt_tokens,
            u.cached_tokens,
            u.cache_write_tokens,
            u.completion_tokens
        ),
        (4020, 3000, 1000, 40)
    );
    assert_eq!(
        chat["usage"]["prompt_tokens_details"]["cached_tokens"],
        3000
    );
    // claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write, $15 output:
    // 20 × 3 + 3000 × 0.3 + 1000 × 3.75 + 40 × 15 = 5,310 µ$.
    let price = crate::money::Price {
        cached_input_per_mtok: Some(crate::money::Nanos(300_000_000)),
        cache_write_per_mtok: Some(crate::money::Nanos(3_750_000_000)),
        ..crate::money::Price::new(
            crate::money::Nanos(3_000_000_000),
            crate::money::Nanos(15_000_000_000),
        )
    };
    assert_eq!(u.cost(&price), crate::money::Nanos(5_310_000));
}

#[test]
fn a_messages_stream_becomes_chat_chunks_then_done() {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_02", "type": "message", "role": "assistant",
            "content": [], "model": "claude", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
        json!({"type": "message_stop"}),
    ];
    let mut t = Translator::new("sonnet", true);
    let mut chunks: Vec<Value> = Vec::new();
    let mut end = None;
    for (i, e) in events.iter().enumerate() {
        let step = t.event(e.to_string().as_bytes());
        chunks.extend(
            step.chunks
                .iter()
                .map(|c| serde_json::from_slice::<Value>(c).unwrap()),
        );
        if i < 9 {
            assert_eq!(t.usage(), None, "not counted before message_delta");
        }
        end = end.or(step.end);
    }
    assert_eq!(end, Some(true));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hello");
    assert_eq!(
        chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"],
        "toolu_9"
    );
    let args: String = chunks[3..5]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(args, "{\"a\":1}");
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[6]["usage"]["prompt_tokens"], 30);
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 15);
    assert!(chunks
        .iter()
        .all(|c| c["model"] == "sonnet" && c["id"] == "msg_02"));
    let mut broken = Translator::new("m", false);
    let step = broken
        .event(br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
    assert_eq!(step.end, Some(false));
}
