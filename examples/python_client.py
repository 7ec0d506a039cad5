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

print("python SDK check: ok")
