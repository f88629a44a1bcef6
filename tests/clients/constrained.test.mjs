// Constrained decoding through real clients: `pensieve serve` on a random-weight model with the real Qwen3
// tokenizer and chat template (Hermes <tool_call> syntax, <think> markup). A random model writes garbage, so
// only the constraint can make these pass: a forced tool_choice must give a tool_use / tool_calls entry for an
// allowed tool whose input is a JSON object, and response_format json_object must give parseable JSON.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { missingTestData, startServer, statusOf, testDataDir } from './helpers.mjs';

const binary = process.env.PENSIEVE_BINARY;
const qwen3 = `${testDataDir}/tokenizers/qwen3`;
const noData = missingTestData('constrained.test.mjs', 'tokenizers/qwen3/tokenizer_config.json');
const skip = !binary || !fs.existsSync(binary) ? 'needs the pensieve binary' : noData || false;
let tmp;
let server;
let anthropic;
let openai;

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-constrain-'));
  const model = path.join(tmp, 'model');
  const made = spawnSync(binary, ['random-model', '--shape', 'tiny', '--ctx', '4096', '--vocab', '151936', '--tokenizer', qwen3, model],
    { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  for (const f of ['tokenizer.json', 'tokenizer.json.gz']) {
    if (fs.existsSync(path.join(qwen3, f)) && !fs.existsSync(path.join(model, f))) fs.copyFileSync(path.join(qwen3, f), path.join(model, f));
  }
  server = await startServer(binary, ['serve', '--model', model, '--port', '0', '--threads', '2']);
  anthropic = new Anthropic({ baseURL: server.baseURL, apiKey: 'x', maxRetries: 0 });
  openai = new OpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: 'x', maxRetries: 0 });
});
after(async () => {
  if (server) await server.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const weather = {
  name: 'get_weather', description: 'Current weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const time = {
  name: 'get_time', description: 'Current time in a time zone',
  input_schema: { type: 'object', properties: { zone: { type: 'string' } } },
};
const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const noMarkup = (blocks) => blocks.filter((b) => b.type === 'text').every((b) => !b.text.includes('<tool_call>'));

test('Anthropic create: tool_choice tool gives one tool_use of that tool with an object input', { skip }, async () => {
  for (const temperature of [0, 1]) {
    const msg = await anthropic.messages.create({ model: 'm', max_tokens: 120, temperature, tools: [weather, time],
      tool_choice: { type: 'tool', name: 'get_time' }, messages });
    const uses = msg.content.filter((b) => b.type === 'tool_use');
    assert.equal(uses.length, 1, JSON.stringify(msg.content));
    assert.equal(uses[0].name, 'get_time');
    assert.match(uses[0].id, /^toolu_[A-Za-z0-9_-]+$/);
    assert.ok(isObject(uses[0].input), JSON.stringify(uses[0].input));
    assert.equal(msg.stop_reason, 'tool_use');
    assert.ok(noMarkup(msg.content));
  }
});

test('Anthropic stream: tool_choice any gives a tool_use whose streamed JSON equals the final input', { skip }, async () => {
  for (const temperature of [0, 1]) {
    const stream = anthropic.messages.stream({ model: 'm', max_tokens: 120, temperature, tools: [weather, time],
      tool_choice: { type: 'any', disable_parallel_tool_use: true }, messages });
    let partial = '';
    let startInput;
    stream.on('streamEvent', (e) => {
      if (e.type === 'content_block_start' && e.content_block.type === 'tool_use') startInput = e.content_block.input;
      if (e.type === 'content_block_delta' && e.delta.type === 'input_json_delta') partial += e.delta.partial_json;
    });
    const final = await stream.finalMessage();
    const uses = final.content.filter((b) => b.type === 'tool_use');
    assert.equal(uses.length, 1, JSON.stringify(final.content));
    assert.ok(['get_weather', 'get_time'].includes(uses[0].name), uses[0].name);
    assert.deepEqual(startInput, {});
    assert.ok(isObject(uses[0].input));
    assert.deepEqual(JSON.parse(partial), uses[0].input);
    assert.equal(final.stop_reason, 'tool_use');
    assert.ok(noMarkup(final.content));
  }
});

const fnTools = [weather, time].map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.input_schema } }));

test('OpenAI: tool_choice required and named give tool_calls with parseable object arguments', { skip }, async () => {
  const plain = await openai.chat.completions.create({ model: 'm', max_tokens: 120, tools: fnTools, tool_choice: 'required', messages });
  const calls = plain.choices[0].message.tool_calls;
  assert.ok(calls && calls.length >= 1, JSON.stringify(plain.choices[0].message));
  for (const c of calls) {
    assert.ok(['get_weather', 'get_time'].includes(c.function.name));
    assert.ok(isObject(JSON.parse(c.function.arguments)), c.function.arguments);
  }
  assert.equal(plain.choices[0].finish_reason, 'tool_calls');

  const runner = openai.chat.completions.stream({ model: 'm', max_tokens: 120, temperature: 0, tools: fnTools,
    tool_choice: { type: 'function', function: { name: 'get_weather' } }, messages });
  const final = await runner.finalChatCompletion();
  const named = final.choices[0].message.tool_calls;
  assert.equal(named.length, 1, JSON.stringify(final.choices[0].message));
  assert.equal(named[0].function.name, 'get_weather');
  assert.ok(isObject(JSON.parse(named[0].function.arguments)), named[0].function.arguments);
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
});

test('OpenAI: response_format json_object gives one parseable JSON object (create and stream)', { skip }, async () => {
  for (const response_format of [{ type: 'json_object' }, { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } }]) {
    for (const max_tokens of [16, 100]) {
      const r = await openai.chat.completions.create({ model: 'm', max_tokens, response_format,
        messages: [{ role: 'user', content: 'Give me a JSON object describing Paris.' }] });
      const content = r.choices[0].message.content;
      assert.ok(isObject(JSON.parse(content)), content);
      assert.ok(content.startsWith('{'), content);
      assert.equal(r.choices[0].finish_reason, 'stop');
    }
  }
  const stream = await openai.chat.completions.create({ model: 'm', max_tokens: 100, stream: true, seed: 3,
    response_format: { type: 'json_object' }, messages: [{ role: 'user', content: 'JSON please' }] });
  let text = '';
  let finish;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.ok(isObject(JSON.parse(text)), text);
  assert.equal(finish, 'stop');
  assert.deepEqual(server.requestLines().filter((l) => statusOf(l) >= 300), []);
});
