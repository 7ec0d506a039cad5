"""The official Anthropic Python SDK, unchanged, talking to tollgate.

    TOLLGATE_URL=http://127.0.0.1:8080 TOLLGATE_KEY=tg_... python3 examples/anthropic_client.py

Only base_url and api_key differ from a direct Anthropic setup; the model
can be any the policy names (GPT, Claude or the local engine) or `auto`.
TOLLGATE_BROKE_KEY, when set, is a key whose budget is spent: its request
must fail with the SDK's RateLimitError. Exits non-zero if anything
tollgate returns is not what the SDK expects.
"""

import os

import anthropic

url = os.environ.get("TOLLGATE_URL", "http://127.0.0.1:8080")
key = os.environ.get("TOLLGATE_KEY", "anonymous")
model = os.environ.get("TOLLGATE_MODEL", "auto")
client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
messages = [{"role": "user", "content": "Say hello in five words."}]

# 1. A message.
raw = client.messages.with_raw_response.create(
    model=model, max_tokens=32, system="You are terse.", messages=messages)
reply = raw.parse()
text = "".join(b.text for b in reply.content if b.type == "text")
print(f"create: model={reply.model} via={raw.headers.get('x-tollgate-model')} "
      f"usage={reply.usage.input_tokens}+{reply.usage.output_tokens} "
      f"stop={reply.stop_reason} text={text!r}")
assert reply.type == "message" and reply.role == "assistant"
assert text, "empty reply"
assert reply.stop_reason in ("end_turn", "max_tokens", "stop_sequence")
assert reply.usage.output_tokens > 0

# 2. A stream, with the SDK's own event accumulation.
with client.messages.stream(model=model, max_tokens=32, messages=messages) as stream:
    streamed = "".join(stream.text_stream)
    final = stream.get_final_message()
print(f"stream: text={streamed!r} stop={final.stop_reason} output_tokens={final.usage.output_tokens}")
assert streamed, "empty stream"
assert final.stop_reason is not None

# 3. Tools: the answer is a tool_use block (or text, if the model chose so).
tools = [{"name": "get_weather", "description": "The weather in a city.",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}]
tool_reply = client.messages.create(
    model=model, max_tokens=64, tools=tools, tool_choice={"type": "auto"},
    messages=[{"role": "user", "content": "What's the weather in Paris?"}])
kinds = [b.type for b in tool_reply.content]
print(f"tools: blocks={kinds} stop={tool_reply.stop_reason}")
for b in tool_reply.content:
    if b.type == "tool_use":
        assert isinstance(b.input, dict) and b.name == "get_weather"
        # The result goes back as a tool_result block.
        follow = client.messages.create(
            model=model, max_tokens=32, tools=tools,
            messages=[{"role": "user", "content": "What's the weather in Paris?"},
                      {"role": "assistant", "content": tool_reply.content},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b.id,
                                                    "content": "18C and dry"}]}])
        assert follow.content, "empty answer after the tool result"
        print(f"tool_result: stop={follow.stop_reason}")

# 4. count_tokens.
count = client.messages.count_tokens(model=model, messages=messages)
print(f"count_tokens: {count.input_tokens}")
assert count.input_tokens > 0

# 5. Errors arrive as the SDK's own exception classes.
bad = anthropic.Anthropic(base_url=url, api_key="tg_not_a_key", max_retries=0)
try:
    bad.messages.create(model=model, max_tokens=8, messages=messages)
    raise SystemExit("a bad key was accepted")
except anthropic.AuthenticationError as e:
    print(f"bad key: {type(e).__name__} {e.status_code}")
try:
    client.messages.create(model="no-such-model", max_tokens=8, messages=messages)
    raise SystemExit("an unknown model was accepted")
except anthropic.NotFoundError as e:
    print(f"unknown model: {type(e).__name__} {e.status_code}")
try:
    client.messages.create(model=model, messages=messages)  # no max_tokens
    raise SystemExit("a request without max_tokens was accepted")
except (anthropic.BadRequestError, TypeError) as e:
    print(f"no max_tokens: {type(e).__name__}")
broke = os.environ.get("TOLLGATE_BROKE_KEY")
if broke:
    spent = anthropic.Anthropic(base_url=url, api_key=broke, max_retries=0)
    try:
        spent.messages.create(model=model, max_tokens=8, messages=messages)
        raise SystemExit("an exhausted budget admitted a request")
    except anthropic.RateLimitError as e:
        print(f"exhausted budget: {type(e).__name__} {e.status_code}")
print("anthropic SDK: ok")
