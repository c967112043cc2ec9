// Talks to a live `sharptune api` server through LangChain's ChatOpenAI (@langchain/openai) and prints what it got
// as one JSON line, for the test suite to compare with the server's own answer.
// Usage: node check.mjs BASE_URL MODEL API_KEY
import { ChatOpenAI } from "@langchain/openai";

const [baseURL, model, apiKey] = process.argv.slice(2);
const chat = (options) => new ChatOpenAI({ model, apiKey, configuration: { baseURL }, temperature: 0, maxRetries: 0, ...options });
const question = "Hello from LangChain";

const reply = await chat({ maxTokens: 8 }).invoke(question);

let streamed = "";
for await (const chunk of await chat({ maxTokens: 8 }).stream(question)) streamed += chunk.content;

// Tools with bounded arguments, so that the random test model's forced calls end within max_tokens.
const tools = [
  { type: "function", function: { name: "get_time", description: "The time in a zone", parameters: { type: "object", properties: { zone: { enum: ["UTC", "CET"] } }, required: ["zone"], additionalProperties: false } } },
  { type: "function", function: { name: "set_alarm", description: "Sets an alarm", parameters: { type: "object", properties: { hour: { type: "integer" }, on: { type: "boolean" } }, required: ["hour", "on"], additionalProperties: false } } },
];

// Streamed tool-call chunks, merged as LangChain applications merge them.
let merged = null;
for await (const chunk of await chat({ maxTokens: 200 }).bindTools(tools, { tool_choice: "set_alarm" }).stream(question))
  merged = merged === null ? chunk : merged.concat(chunk);

const required = await chat({ maxTokens: 200 }).bindTools(tools, { tool_choice: "required" }).invoke(question);

const flagsSchema = {
  type: "object", properties: { ok: { type: "boolean" }, level: { enum: [1, 2, 3] } }, required: ["ok", "level"], additionalProperties: false,
};
const flags = await chat({ maxTokens: 200 }).withStructuredOutput(flagsSchema, { name: "flags", method: "jsonSchema", strict: true }).invoke(question);

const calls = (message) => message.tool_calls.map((c) => ({ name: c.name, args: c.args, id: c.id }));
console.log(JSON.stringify({
  content: reply.content,
  finish_reason: reply.response_metadata.finish_reason,
  streamed,
  streamed_tool_calls: calls(merged),
  required_tool_calls: calls(required),
  structured: flags,
}));
