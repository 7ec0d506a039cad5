// The official OpenAI Node SDK, unchanged, talking to tollgate.
//
//   TOLLGATE_URL=http://127.0.0.1:8080/v1 TOLLGATE_KEY=tg_... node examples/node_client.mjs
//
// Only baseURL and apiKey differ from a direct OpenAI setup. Exits non-zero
// if anything tollgate returns is not what the SDK expects.
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.TOLLGATE_URL ?? "http://127.0.0.1:8080/v1",
  apiKey: process.env.TOLLGATE_KEY ?? "anonymous",
  maxRetries: 0,
});
const model = process.env.TOLLGATE_MODEL ?? "auto";
const messages = [{ role: "user", content: "Say hello in five words." }];

// 1. A plain completion, with tollgate's headers.
const { data: reply, response } = await client.chat.completions
  .create({ model, messages, max_tokens: 32 })
  .withResponse();
console.log(
  `create: model=${reply.model} route=${response.headers.get("x-tollgate-route")} ` +
    `usage=${reply.usage.prompt_tokens}+${reply.usage.completion_tokens} text=${JSON.stringify(reply.choices[0].message.content)}`,
);
assert.ok(reply.choices[0].message.content, "empty reply");
assert.ok(reply.usage.completion_tokens > 0);
assert.ok(response.headers.get("x-tollgate-cost-usd") !== null, "no cost header");

// 2. A stream, with the usage chunk requested.
let text = "";
let usage = null;
const stream = await client.chat.completions.create({
  model,
  messages,
  max_tokens: 32,
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
console.log(`stream: ${JSON.stringify(text)} usage=${usage?.prompt_tokens}+${usage?.completion_tokens}`);
assert.ok(text, "empty stream");
assert.ok(usage, "no usage chunk");

// 3. The models this key may use.
const ids = [];
for await (const m of client.models.list()) ids.push(m.id);
console.log(`models: ${JSON.stringify(ids)}`);
assert.ok(ids.includes(model));

// 4. Errors arrive as the SDK's own error classes.
await assert.rejects(
  client.chat.completions.create({ model: "no-such-model", messages }),
  (e) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found",
);
console.log("unknown model -> NotFoundError (model_not_found)");
await assert.rejects(
  client.chat.completions.create({ model, messages: [] }),
  (e) => e instanceof OpenAI.BadRequestError && e.param === "messages",
);
console.log("empty messages -> BadRequestError (param=messages)");
await assert.rejects(
  new OpenAI({ baseURL: client.baseURL, apiKey: "tg_wrong", maxRetries: 0 }).chat.completions.create({ model, messages }),
  (e) => e instanceof OpenAI.AuthenticationError,
);
console.log("wrong key -> AuthenticationError");

// 5. Embeddings, batched (TOLLGATE_EMBED_MODEL names an embedding model).
const embedModel = process.env.TOLLGATE_EMBED_MODEL;
if (embedModel) {
  const { data: emb, response: r } = await client.embeddings
    .create({ model: embedModel, input: ["first text", "second text"] })
    .withResponse();
  console.log(
    `embeddings: ${emb.data.length} vectors of ${emb.data[0].embedding.length} ` +
      `usage=${emb.usage.prompt_tokens} cost=${r.headers.get("x-tollgate-cost-usd")}`,
  );
  assert.equal(emb.data.length, 2);
  assert.ok(emb.data[0].embedding.length > 0);
  assert.ok(emb.usage.prompt_tokens > 0);
}

// 6. Legacy completions, JSON and stream (TOLLGATE_COMPLETIONS_MODEL).
const textModel = process.env.TOLLGATE_COMPLETIONS_MODEL;
if (textModel) {
  const c = await client.completions.create({ model: textModel, prompt: "Say hello", max_tokens: 8 });
  let streamed = "";
  for await (const ch of await client.completions.create({ model: textModel, prompt: "Say hello", max_tokens: 8, stream: true })) {
    if (ch.choices.length) streamed += ch.choices[0].text;
  }
  console.log(`completions: ${JSON.stringify(c.choices[0].text)} usage=${c.usage.prompt_tokens}+${c.usage.completion_tokens} stream=${JSON.stringify(streamed)}`);
  assert.ok(c.choices[0].text && c.usage.completion_tokens > 0);
  assert.equal(streamed, c.choices[0].text);
}

// 7. The Responses API (TOLLGATE_RESPONSES_MODELS: comma-separated), JSON,
//    streamed events, the SDK's stream helper, function tools, and a 400
//    for stored state a chat-only model cannot hold.
const responsesModels = (process.env.TOLLGATE_RESPONSES_MODELS ?? "").split(",").filter(Boolean);
const tools = [{ type: "function", name: "get_weather", description: "Weather for a city.",
  parameters: { type: "object", properties: { location: { type: "string" } } } }];
for (const m of responsesModels) {
  const r = await client.responses.create({ model: m, instructions: "Be brief.", input: "Say hello", max_output_tokens: 32 });
  assert.equal(r.object, "response");
  assert.equal(r.model, m);
  assert.ok(r.output_text, "empty output_text");
  assert.ok(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
  const kinds = [];
  let deltas = "";
  for await (const e of await client.responses.create({ model: m, input: "Say hello", max_output_tokens: 32, stream: true })) {
    kinds.push(e.type);
    if (e.type === "response.output_text.delta") deltas += e.delta;
  }
  assert.equal(kinds[0], "response.created");
  assert.equal(kinds.at(-1), "response.completed");
  // The helper rebuilds the response from the events: each must fit.
  const final = await client.responses.stream({ model: m, input: "Say hello", max_output_tokens: 32 }).finalResponse();
  assert.equal(final.output_text, deltas);
  assert.equal(deltas, r.output_text);
  const call = await client.responses.create({ model: m, input: "Weather in Paris?", tools, max_output_tokens: 32 });
  const fc = call.output.filter((o) => o.type === "function_call");
  assert.ok(fc.length && fc[0].name === "get_weather");
  console.log(`responses ${m}: ${JSON.stringify(r.output_text)} usage=${r.usage.input_tokens}+${r.usage.output_tokens} events=${kinds.length} tool=${fc[0].name}(${fc[0].arguments})`);
}
if (responsesModels.includes("llama-chat")) {
  await assert.rejects(
    client.responses.create({ model: "llama-chat", input: "and then?", previous_response_id: "resp_1" }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === "previous_response_id",
  );
  console.log("previous_response_id on a chat-only model -> BadRequestError (param=previous_response_id)");
}

console.log("node SDK check: ok");
