// Both SDKs against `pensieve serve` on the real stories260K model (shared data): greedy stream == non-stream,
// count_tokens == billed input, max_tokens, stop sequences cut at text level, prompt too long, clamping.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { missingTestData, startServer, statusOf, testDataDir } from './helpers.mjs';

const binary = process.env.PENSIEVE_BINARY;
const modelDir = `${testDataDir}/models/stories260K/stories260K-hf`;
const noData = missingTestData('real_model.test.mjs', 'models/stories260K/stories260K-hf/config.json');
const skip = !binary || !fs.existsSync(binary) ? 'needs the pensieve binary' : noData || false;
let server;
let anthropic;
let openai;

before(async () => {
  if (skip) return;
  server = await startServer(binary, ['serve', '--model', modelDir, '--port', '0', '--threads', '2']);
  anthropic = new Anthropic({ baseURL: server.baseURL, apiKey: 'x', maxRetries: 0 });
  openai = new OpenAI({ baseURL: `${server.baseURL}/v1`, apiKey: 'x', maxRetries: 0 });
});
after(async () => { if (server) await server.stop(); });

const greedy = { model: 'stories', max_tokens: 40, temperature: 0, messages: [{ role: 'user', content: 'Once upon a time' }] };

test('greedy stream equals non-stream; usage in both', { skip }, async () => {
  const plain = await anthropic.messages.create(greedy);
  assert.equal(plain.content[0].type, 'text');
  assert.ok(plain.content[0].text.length > 0);
  assert.ok(plain.usage.input_tokens > 0 && plain.usage.output_tokens > 0);
  const stream = anthropic.messages.stream(greedy);
  let text = '';
  let startUsage;
  stream.on('text', (t) => { text += t; });
  // (Copy: the SDK keeps updating that message object with later usage.)
  stream.on('streamEvent', (e) => { if (e.type === 'message_start') startUsage = { ...e.message.usage }; });
  const final = await stream.finalMessage();
  assert.equal(text, plain.content[0].text);
  assert.equal(final.content[0].text, plain.content[0].text);
  // message_start carries the whole prompt (reuse is only known later); message_delta splits it into
  // input + cache_read.
  assert.equal(startUsage.input_tokens, plain.usage.input_tokens + plain.usage.cache_read_input_tokens);
  assert.equal(final.usage.input_tokens + final.usage.cache_read_input_tokens, startUsage.input_tokens);
  assert.equal(final.usage.output_tokens, plain.usage.output_tokens);
});

test('count_tokens equals billed input', { skip }, async () => {
  const { max_tokens, temperature, ...rest } = greedy;
  const counted = await anthropic.messages.countTokens({ ...rest, system: 'A story.' });
  const msg = await anthropic.messages.create({ ...greedy, system: 'A story.', max_tokens: 1 });
  assert.equal(counted.input_tokens, msg.usage.input_tokens + msg.usage.cache_read_input_tokens);
});

test('max_tokens 5 stops with max_tokens', { skip }, async () => {
  const msg = await anthropic.messages.create({ ...greedy, max_tokens: 5 });
  assert.ok(msg.usage.output_tokens <= 5);
  assert.ok(['max_tokens', 'end_turn'].includes(msg.stop_reason));
});

test('stop sequence taken from the greedy output cuts it there and is never emitted', { skip }, async () => {
  const plain = (await anthropic.messages.create(greedy)).content[0].text;
  const cut = Math.floor(plain.length / 2);
  const stopSeq = plain.slice(cut, cut + 3);
  const expected = plain.slice(0, plain.indexOf(stopSeq));
  const msg = await anthropic.messages.create({ ...greedy, stop_sequences: [stopSeq] });
  assert.equal(msg.stop_reason, 'stop_sequence');
  assert.equal(msg.stop_sequence, stopSeq);
  assert.equal(msg.content.length ? msg.content[0].text : '', expected);
  const stream = anthropic.messages.stream({ ...greedy, stop_sequences: [stopSeq] });
  let text = '';
  stream.on('text', (t) => { text += t; });
  await stream.finalMessage();
  assert.equal(text, expected);
});

test('prompt too long is a 400 with the phrase Claude Code recognises; overflow of max_tokens is clamped', { skip }, async () => {
  const long = 'Once upon a time there was a cat. '.repeat(400);
  await assert.rejects(anthropic.messages.create({ ...greedy, messages: [{ role: 'user', content: long }] }),
    (e) => e instanceof Anthropic.BadRequestError && /prompt is too long: \d+ tokens > \d+ maximum/.test(e.message));
  // (The SDK refuses non-streaming calls whose max_tokens could take over 10 minutes, so stream, like Claude Code.)
  const msg = await anthropic.messages.stream({ ...greedy, max_tokens: 32000 }).finalMessage();
  assert.ok(['max_tokens', 'end_turn'].includes(msg.stop_reason));
  assert.ok(msg.usage.input_tokens + msg.usage.output_tokens <= 512);
});

test('prefix reuse: a second Claude-Code-shaped request with a different billing line reads the prefix from cache', { skip }, async () => {
  // §8.32: the billing-header block (its hash changes per conversation) is normalised away before templating,
  // so the rest of the system prompt is a stable prefix the engine can reuse.
  const story = 'Lily was a little girl who loved to play in the park with her dog. '.repeat(12);
  const shaped = (cch) => ({
    model: 'stories', max_tokens: 4, temperature: 0,
    system: [{ type: 'text', text: `x-anthropic-billing-header: cc_version=2.1.197.${cch}; cc_entrypoint=sdk-cli;` },
      { type: 'text', text: story, cache_control: { type: 'ephemeral' } }],
    messages: [{ role: 'user', content: 'Hi' }],
  });
  const first = await anthropic.messages.create(shaped('a1b'));
  const second = await anthropic.messages.create(shaped('f9e'));
  const total = second.usage.input_tokens + second.usage.cache_read_input_tokens;
  assert.equal(total, first.usage.input_tokens + first.usage.cache_read_input_tokens);
  assert.ok(second.usage.cache_read_input_tokens >= 0.9 * (total - 16),
    `cache_read ${second.usage.cache_read_input_tokens} of ${total}`);
});

test('openai chat completions stream with usage and non-stream agree', { skip }, async () => {
  const params = { model: 'stories', temperature: 0, max_tokens: 30, messages: [{ role: 'user', content: 'Once upon a time' }] };
  const plain = await openai.chat.completions.create(params);
  const stream = await openai.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    if (c.choices.length) text += c.choices[0].delta?.content ?? '';
  }
  assert.equal(text, plain.choices[0].message.content);
  assert.equal(usage.completion_tokens, plain.usage.completion_tokens);
  const comp = await openai.completions.create({ model: 'stories', prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
  assert.ok(comp.choices[0].text.length > 0);
  assert.ok(server.requestLines().every((l) => statusOf(l) < 500));
});
