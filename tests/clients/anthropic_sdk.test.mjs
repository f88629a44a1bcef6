// @anthropic-ai/sdk (pinned) against pensieve_fake_server: the real HTTP server and Anthropic adapter over a
// scripted engine, so tool calls and thinking are deterministic. anthropic-api.md §8 cases 1, 4, 7, 16, 17, 19.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { startServer, statusOf } from './helpers.mjs';

const fakeServer = process.env.PENSIEVE_FAKE_SERVER;
let server;
let client;

before(async () => {
  if (!fakeServer) return;
  server = await startServer(fakeServer, ['--port', '0', '--api-key', 'test-key']);
  client = new Anthropic({ baseURL: server.baseURL, apiKey: 'test-key', maxRetries: 0 });
});
after(async () => { if (server) await server.stop(); });

const weatherTool = {
  name: 'get_weather',
  description: 'Current weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] },
};

test('messages.create returns a well-formed message with usage and request id', { skip: !fakeServer }, async () => {
  const { data, request_id } = await client.messages
    .create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Say hi' }] })
    .withResponse();
  assert.equal(data.type, 'message');
  assert.equal(data.role, 'assistant');
  assert.match(data.id, /^msg_/);
  assert.equal(data.model, 'claude-sonnet-4-5');
  assert.equal(data.content[0].type, 'text');
  assert.equal(data.content[0].text, 'Hi! I am a fake model.');
  assert.ok(['end_turn', 'max_tokens'].includes(data.stop_reason));
  assert.ok(data.usage.input_tokens > 0);
  assert.ok(data.usage.output_tokens > 0);
  assert.match(request_id, /^req_/);
});

test('messages.stream finalMessage equals text events and the non-streaming answer', { skip: !fakeServer }, async () => {
  const params = { model: 'm', max_tokens: 64, messages: [{ role: 'user', content: 'say an emoji' }] };
  const stream = client.messages.stream(params);
  let text = '';
  let startUsage;
  stream.on('text', (t) => { text += t; });
  stream.on('streamEvent', (e) => { if (e.type === 'message_start') startUsage = e.message.usage; });
  const final = await stream.finalMessage();
  const plain = await client.messages.create(params);
  assert.equal(final.content[0].text, text);
  assert.equal(text, plain.content[0].text);
  assert.equal(text, 'héllo 👋 世界 ✓');
  assert.ok(startUsage.input_tokens > 0);
  assert.ok(final.usage.output_tokens > 0);
  assert.equal(final.stop_reason, 'end_turn');
});

test('tools with forced tool_choice produce a tool_use block (stream and not)', { skip: !fakeServer }, async () => {
  const params = {
    model: 'm', max_tokens: 500, tools: [weatherTool],
    tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true },
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
  };
  const msg = await client.messages.create(params);
  const uses = msg.content.filter((b) => b.type === 'tool_use');
  assert.equal(uses.length, 1);
  assert.match(uses[0].id, /^toolu_[A-Za-z0-9_-]+$/);
  assert.equal(uses[0].name, 'get_weather');
  assert.equal(uses[0].input.city, 'Paris');
  assert.equal(msg.stop_reason, 'tool_use');
  for (const b of msg.content) if (b.type === 'text') assert.ok(!b.text.includes('<tool_call>'));

  const stream = client.messages.stream(params);
  let json = '';
  stream.on('inputJson', (partial) => { json += partial; });
  const final = await stream.finalMessage();
  const streamed = final.content.filter((b) => b.type === 'tool_use');
  assert.equal(streamed.length, 1);
  assert.deepEqual(streamed[0].input, JSON.parse(json));
  assert.equal(final.stop_reason, 'tool_use');

  // Round trip: the tool result comes back as a user turn.
  const answer = await client.messages.create({
    ...params, tool_choice: { type: 'auto' },
    messages: [...params.messages, { role: 'assistant', content: msg.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: uses[0].id, content: '18C' }] }],
  });
  assert.equal(answer.content[0].text, 'The tool said: 18C');
});

test('count_tokens equals the billed input of the same request', { skip: !fakeServer }, async () => {
  const params = { model: 'm', tools: [weatherTool], system: 'Be brief.', messages: [{ role: 'user', content: 'What is the weather in Paris?' }] };
  const counted = await client.messages.countTokens(params);
  const msg = await client.messages.create({ ...params, max_tokens: 500 });
  const billed = msg.usage.input_tokens + (msg.usage.cache_read_input_tokens ?? 0) + (msg.usage.cache_creation_input_tokens ?? 0);
  assert.equal(counted.input_tokens, billed);
  const beta = await client.beta.messages.countTokens({ ...params, betas: ['token-counting-2024-11-01'] });
  assert.equal(beta.input_tokens, billed);
});

test('models list and retrieve', { skip: !fakeServer }, async () => {
  const ids = [];
  for await (const m of client.models.list()) {
    ids.push(m.id);
    assert.equal(m.type, 'model');
    assert.ok(!Number.isNaN(Date.parse(m.created_at)));
  }
  assert.deepEqual(ids, ['fake-model']);
  const one = await client.models.retrieve('fake-model');
  assert.equal(one.id, 'fake-model');
  await assert.rejects(client.models.retrieve('nope'), (e) => e instanceof Anthropic.NotFoundError);
});

test('errors surface as typed SDK errors', { skip: !fakeServer }, async () => {
  await assert.rejects(
    client.messages.create({ model: 'm', max_tokens: 5, messages: [] }),
    (e) => e instanceof Anthropic.BadRequestError && e.error?.type === 'error' && e.error?.error?.type === 'invalid_request_error',
  );
  const wrong = new Anthropic({ baseURL: server.baseURL, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(wrong.messages.create({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof Anthropic.AuthenticationError);
  const bearer = new Anthropic({ baseURL: server.baseURL, apiKey: null, authToken: 'test-key', maxRetries: 0 });
  const ok = await bearer.messages.create({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'Say hi' }] });
  assert.equal(ok.stop_reason, 'max_tokens');
  // Mid-stream failure: the SDK raises an APIError.
  await assert.rejects(client.messages.stream({ model: 'm', max_tokens: 50, messages: [{ role: 'user', content: 'fail midway' }] }).finalMessage(),
    (e) => e instanceof Anthropic.APIError);
  // Server log: one line per request, statuses as expected.
  assert.ok(server.requestLines().some((l) => statusOf(l) === 401));
});
