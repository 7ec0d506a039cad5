"""The official OpenAI Python SDK, unchanged, talking to tollgate.

    TOLLGATE_URL=http://127.0.0.1:8080/v1 TOLLGATE_KEY=tg_... python3 examples/python_client.py

Only base_url and api_key differ from a direct OpenAI setup. Exits non-zero
if anything tollgate returns is not what the SDK expects.
"""

import os
import sys

import openai
from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("TOLLGATE_URL", "http://127.0.0.1:8080/v1"),
    api_key=os.environ.get("TOLLGATE_KEY", "anonymous"),
    max_retries=0,
)
model = os.environ.get("TOLLGATE_MODEL", "auto")
messages = [{"role": "user", "content": "Say hello in five words."}]

# 1. A plain completion.
raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=32)
reply = raw.parse()
print(f"create: model={reply.model} route={raw.headers.get('x-tollgate-route')} "
      f"usage={reply.usage.prompt_tokens}+{reply.usage.completion_tokens} "
      f"text={reply.choices[0].message.content!r}")
assert reply.choices[0].message.content, "empty reply"
assert reply.usage.completion_tokens > 0

# 2. A stream, with the usage chunk requested.
text, usage = [], None
for chunk in client.chat.completions.create(
    model=model, messages=messages, max_tokens=32, stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices:
        text.append(chunk.choices[0].delta.content or "")
    if chunk.usage:
        usage = chunk.usage
print(f"stream: {''.join(text)!r} usage={usage.prompt_tokens}+{usage.completion_tokens}")
assert "".join(text), "empty stream"
assert usage is not None, "no usage chunk"

# 3. The models this key may use.
ids = [m.id for m in client.models.list()]
print(f"models: {ids}")
assert model in ids

# 4. Errors arrive as the SDK's own exception types.
try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    sys.exit("expected NotFoundError")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e
    print("unknown model -> NotFoundError (model_not_found)")
try:
    client.chat.completions.create(model=model, messages=[])
    sys.exit("expected BadRequestError")
except openai.BadRequestError as e:
    assert e.param == "messages", e
    print("empty messages -> BadRequestError (param=messages)")

# 5. Embeddings, batched (TOLLGATE_EMBED_MODEL names an embedding model).
embed_model = os.environ.get("TOLLGATE_EMBED_MODEL")
if embed_model:
    raw = client.embeddings.with_raw_response.create(model=embed_model, input=["first text", "second text"])
    emb = raw.parse()
    print(f"embeddings: {len(emb.data)} vectors of {len(emb.data[0].embedding)} "
          f"usage={emb.usage.prompt_tokens} cost={raw.headers.get('x-tollgate-cost-usd')}")
    assert len(emb.data) == 2 and len(emb.data[0].embedding) > 0
    assert emb.usage.prompt_tokens > 0

# 6. Legacy completions, JSON and stream (TOLLGATE_COMPLETIONS_MODEL).
text_model = os.environ.get("TOLLGATE_COMPLETIONS_MODEL")
if text_model:
    c = client.completions.create(model=text_model, prompt="Say hello", max_tokens=8)
    streamed = "".join(
        ch.choices[0].text for ch in client.completions.create(model=text_model, prompt="Say hello", max_tokens=8, stream=True)
        if ch.choices
    )
    print(f"completions: {c.choices[0].text!r} usage={c.usage.prompt_tokens}+{c.usage.completion_tokens} stream={streamed!r}")
    assert c.choices[0].text and c.usage.completion_tokens > 0
    assert streamed == c.choices[0].text

# 7. The Responses API (TOLLGATE_RESPONSES_MODELS: comma-separated), JSON,
#    streamed events, the SDK's stream helper, function tools, and a 400
#    for stored state a chat-only model cannot hold.
responses_models = [m for m in os.environ.get("TOLLGATE_RESPONSES_MODELS", "").split(",") if m]
tools = [{"type": "function", "name": "get_weather", "description": "Weather for a city.",
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}]
for m in responses_models:
    raw = client.responses.with_raw_response.create(
        model=m, instructions="Be brief.", input="Say hello", max_output_tokens=32)
    r = raw.parse()
    assert r.object == "response" and r.model == m, r
    assert r.output_text, r
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0, r.usage
    kinds, deltas = [], []
    for event in client.responses.create(model=m, input="Say hello", max_output_tokens=32, stream=True):
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    with client.responses.stream(model=m, input="Say hello", max_output_tokens=32) as s:
        final = s.get_final_response()
    assert final.output_text == "".join(deltas) == r.output_text, (final.output_text, deltas)
    call = client.responses.create(model=m, input="Weather in Paris?", tools=tools, max_output_tokens=32)
    fc = [o for o in call.output if o.type == "function_call"]
    assert fc and fc[0].name == "get_weather", call.output
    print(f"responses {m}: {r.output_text!r} usage={r.usage.input_tokens}+{r.usage.output_tokens} "
          f"events={len(kinds)} tool={fc[0].name}({fc[0].arguments}) "
          f"reason={raw.headers.get('x-tollgate-reason')!r}")
if "llama-chat" in responses_models:
    try:
        client.responses.create(model="llama-chat", input="and then?", previous_response_id="resp_1")
        sys.exit("expected BadRequestError")
    except openai.BadRequestError as e:
        assert e.param == "previous_response_id", e
        print("previous_response_id on a chat-only model -> BadRequestError (param=previous_response_id)")

print("python SDK check: ok")
