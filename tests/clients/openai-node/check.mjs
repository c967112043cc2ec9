// Talks to a live `sharptune api` server through the official openai client and prints what it got as one JSON
// line, for the test suite to compare with the server's own answer.
// Usage: node check.mjs BASE_URL MODEL API_KEY [ONE_MODEL_BASE_URL]
// ONE_MODEL_BASE_URL: a server with a single model id, asked with model "test" as LLaMA-Factory's examples do.
import OpenAI from "openai";

const [baseURL, model, apiKey, oneModelBaseURL] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const messages = [{ role: "user", content: "Hello from the openai client" }];

const completion = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 8 });

const stream = await client.chat.completions.create({
  model, messages, temperature: 0, max_tokens: 8, stream: true, stream_options: { include_usage: true },
});
let streamed = "";
let finishReason = null;
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices.length > 0) {
    streamed += chunk.choices[0].delta.content ?? "";
    finishReason = chunk.choices[0].finish_reason ?? finishReason;
  }
  if (chunk.usage) usage = chunk.usage;
}

let unknownModelStatus = null;
try {
  await client.chat.completions.create({ model: "no-such-model", messages });
} catch (e) {
  unknownModelStatus = e.status;
}

const models = await client.models.list();

// Tools with bounded arguments, so that the random test model's forced calls end within max_tokens.
const tools = [
  { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { zone: { enum: ["UTC", "CET"] } }, required: ["zone"], additionalProperties: false } } },
  { type: "function", function: { name: "set_alarm", parameters: { type: "object", properties: { hour: { type: "integer" }, on: { type: "boolean" } }, required: ["hour", "on"], additionalProperties: false } } },
];

// The client's own stream helper accumulates tool-call deltas into a final message, as applications use it.
const toolStream = client.chat.completions.stream({
  model, messages, tools, tool_choice: { type: "function", function: { name: "set_alarm" } }, temperature: 0, max_tokens: 200,
});
const toolStreamFinal = await toolStream.finalChatCompletion();

const required = await client.chat.completions.create({ model, messages, tools, tool_choice: "required", temperature: 0, max_tokens: 200 });

const jsonObject = await client.chat.completions.create({ model, messages, response_format: { type: "json_object" }, temperature: 0, max_tokens: 12 });

const flagsSchema = {
  type: "object", properties: { ok: { type: "boolean" }, level: { enum: [1, 2, 3] } }, required: ["ok", "level"], additionalProperties: false,
};
const jsonSchema = await client.chat.completions.create({
  model, messages, temperature: 0, max_tokens: 200,
  response_format: { type: "json_schema", json_schema: { name: "flags", strict: true, schema: flagsSchema } },
});

let anyName = null;
if (oneModelBaseURL) {
  const one = new OpenAI({ baseURL: oneModelBaseURL, apiKey, maxRetries: 0 });
  const reply = await one.chat.completions.create({ model: "test", messages, temperature: 0, max_tokens: 8 });
  anyName = { model: reply.model, content: reply.choices[0].message.content };
}

console.log(JSON.stringify({
  content: completion.choices[0].message.content,
  finish_reason: completion.choices[0].finish_reason,
  usage: completion.usage,
  streamed,
  stream_finish_reason: finishReason,
  stream_usage: usage,
  unknown_model_status: unknownModelStatus,
  models: models.data.map((m) => m.id),
  tool_stream: { finish_reason: toolStreamFinal.choices[0].finish_reason, tool_calls: toolStreamFinal.choices[0].message.tool_calls },
  required: { finish_reason: required.choices[0].finish_reason, tool_calls: required.choices[0].message.tool_calls },
  json_object: { finish_reason: jsonObject.choices[0].finish_reason, content: jsonObject.choices[0].message.content },
  json_schema: { finish_reason: jsonSchema.choices[0].finish_reason, content: jsonSchema.choices[0].message.content },
  any_name: anyName,
}));
