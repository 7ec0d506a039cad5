//! Unit tests of `messages`, on the shapes of Anthropic's API reference.

use bytes::Bytes;

use super::stream::Events;
use super::*;

#[test]
fn a_messages_request_becomes_a_chat_request() {
    let m = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "system": [{"type": "text", "text": "Be brief."}],
        "stop_sequences": ["END"], "metadata": {"user_id": "u-7"}, "stream": true,
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]}]});
    let (chat, ask) = to_chat(&m).unwrap();
    assert!(ask.stream);
    assert_eq!(
        chat["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        chat["messages"][1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBOR"
    );
    assert_eq!(
        chat["messages"][2]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(
        chat["messages"][3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18C"})
    );
    assert_eq!(chat["tool_choice"], "required");
    assert_eq!(chat["parallel_tool_calls"], false);
    assert_eq!(chat["stop"], json!(["END"]));
    assert_eq!(chat["user"], "u-7");
    assert_eq!(chat["stream_options"]["include_usage"], true);
    assert_eq!(
        chat["tools"][0]["function"]["parameters"],
        json!({"type": "object"})
    );
    let no_max = json!({"model": "m", "messages": []});
    assert_eq!(to_chat(&no_max).unwrap_err().1, "max_tokens");
    // What only a Messages provider can take is named, not dropped.
    let top_k = json!({"model": "m", "max_tokens": 1, "top_k": 5, "messages": []});
    assert_eq!(to_chat(&top_k).unwrap().1.upstream_only.unwrap().1, "top_k");
    let doc = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "document"}]}]});
    assert!(to_chat(&doc)
        .unwrap()
        .1
        .upstream_only
        .unwrap()
        .0
        .contains("document"));
    assert_eq!(ask.upstream_only, None);
    assert_eq!(ask.body["system"][0]["text"], "Be brief.");
}

#[test]
fn a_chat_answer_becomes_a_messages_answer() {
    let chat = json!({"id": "chatcmpl-abc", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": "Checking.", "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 10}}});
    let m = reply::message(&chat, "claude");
    assert_eq!(m["id"], "msg_abc");
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(
        m["content"][0],
        json!({"type": "text", "text": "Checking."})
    );
    assert_eq!(m["content"][1]["input"], json!({"city": "Paris"}));
    assert_eq!(m["usage"]["input_tokens"], 20);
    assert_eq!(m["usage"]["cache_read_input_tokens"], 10);
    let (status, e) = reply::error(
        429,
        br#"{"error":{"message":"Budget exhausted","type":"insufficient_quota"}}"#,
    );
    assert_eq!(
        (status, e["error"]["type"].as_str()),
        (429, Some("rate_limit_error"))
    );
    assert_eq!(reply::error(503, b"").0, 529);
    assert_eq!(reply::error(404, b"").1["error"]["type"], "not_found_error");
}

#[test]
fn chat_chunks_become_the_messages_event_sequence() {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut body = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    body += &chunk(json!({"content": "Hel"}), Value::Null);
    body += &chunk(json!({"content": "lo"}), Value::Null);
    body += &chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        Value::Null,
    );
    body += &chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]}),
        Value::Null,
    );
    body += &chunk(json!({}), json!("tool_calls"));
    body += &format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5}})
    );
    body += "data: [DONE]\n\n";
    let mut e = Events::new("claude");
    // Fed in two pieces, cut mid-frame.
    let (a, b) = body.split_at(body.len() / 2);
    let mut out: Vec<Bytes> = e.feed(a.as_bytes());
    out.extend(e.feed(b.as_bytes()));
    out.extend(e.finish());
    let kinds: Vec<String> = out
        .iter()
        .map(|f| {
            std::str::from_utf8(f)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .trim_start_matches("event: ")
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let last_delta = std::str::from_utf8(&out[9]).unwrap();
    assert!(
        last_delta.contains(r#""stop_reason":"tool_use""#),
        "{last_delta}"
    );
    assert!(
        last_delta.contains(r#""input_tokens":12"#) && last_delta.contains(r#""output_tokens":5"#)
    );
    // A stream that ends without [DONE] ends with an error event.
    let mut cut = Events::new("claude");
    cut.feed(chunk(json!({"content": "Hi"}), Value::Null).as_bytes());
    let end = cut.finish();
    assert!(std::str::from_utf8(&end[0])
        .unwrap()
        .starts_with("event: error"));
}
