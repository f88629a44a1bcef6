// openai (pinned) against pensieve_fake_server: chat completions stream and non-stream with usage, tools,
// models, errors (anthropic-api.md §8.34, §8.17).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from './helpers.mjs';

const fakeServer = process.env.PENSIEVE_FAKE_SERVER;
let server;
let client;

before(async () => {
  if (!fakeServer) return;
  server = await startServer(fakeServer, ['--port', '0']);
  client = new OpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => { if (server) await server.stop(); });

const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];

test('chat.completions non-stream with usage', { skip: !fakeServer }, async () => {
  const r = await client.chat.completions.create({ model: 'gpt-local', messages: [{ role: 'user', content: 'Say hi' }], seed: 1 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.content, 'Hi! I am a fake model.');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.usage.completion_tokens, 23);  // 22 byte tokens and the end-of-turn token
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 23);
});

test('chat.completions stream with include_usage', { skip: !fakeServer }, async () => {
  const stream = await client.chat.completions.create({ model: 'm', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'Say hi' }] });
  let text = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length) {
      text += chunk.choices[0].delta?.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
  }
  assert.equal(text, 'Hi! I am a fake model.');
  assert.equal(finish, 'stop');
  assert.equal(usage.completion_tokens, 23);
});

test('tools: streamed tool_calls merge into valid JSON; finalChatCompletion', { skip: !fakeServer }, async () => {
  const runner = client.chat.completions.stream({ model: 'm', tools, tool_choice: 'required', parallel_tool_calls: false,
    stream_options: { include_usage: true }, max_tokens: 500, messages: [{ role: 'user', content: 'weather in Paris?' }] });
  const final = await runner.finalChatCompletion();
  const call = final.choices[0].message.tool_calls[0];
  assert.equal(final.choices[0].message.tool_calls.length, 1);
  assert.equal(call.function.name, 'get_weather');
  assert.equal(JSON.parse(call.function.arguments).city, 'Paris');
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  const plain = await client.chat.completions.create({ model: 'm', tools, max_tokens: 500, messages: [{ role: 'user', content: 'weather in Paris?' }] });
  assert.equal(plain.choices[0].message.tool_calls.length, 2);
});

test('models.list parses the shared endpoint', { skip: !fakeServer }, async () => {
  const ids = [];
  for await (const m of client.models.list()) {
    ids.push(m.id);
    assert.equal(m.object, 'model');
    assert.equal(typeof m.created, 'number');
  }
  assert.deepEqual(ids, ['fake-model']);
});

test('bad requests raise OpenAI errors', { skip: !fakeServer }, async () => {
  await assert.rejects(client.chat.completions.create({ model: 'm', n: 2, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.BadRequestError && /n=1/.test(e.message));
});
