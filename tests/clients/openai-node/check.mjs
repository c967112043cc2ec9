// Talks to a live `sharptune api` server through the official openai client and prints what it got as one JSON
// line, for the test suite to compare with the server's own answer.
// Usage: node check.mjs BASE_URL MODEL API_KEY
import OpenAI from "openai";

const [baseURL, model, apiKey] = process.argv.slice(2);
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
console.log(JSON.stringify({
  content: completion.choices[0].message.content,
  finish_reason: completion.choices[0].finish_reason,
  usage: completion.usage,
  streamed,
  stream_finish_reason: finishReason,
  stream_usage: usage,
  unknown_model_status: unknownModelStatus,
  models: models.data.map((m) => m.id),
}));
