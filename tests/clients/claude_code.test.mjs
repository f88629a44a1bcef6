// Claude Code for real (issue 4 acceptance): the pinned @anthropic-ai/claude-code CLI in print mode
// (`claude -p hello`, temporary HOME, ANTHROPIC_BASE_URL) against
//  1. pensieve_fake_server (the real HTTP server and Anthropic adapter over a scripted engine whose answer ends
//     its turn): the CLI must exit 0, print the model's text, and the server must answer only 2xx;
//  2. `pensieve serve` on a random-weight model with the Qwen3 tokenizer and its tool-capable chat template at
//     64k context: the whole real pipeline (template with CC's 24 tools, a role:system last message, adaptive
//     thinking, ~19k-token prefill with keep-alives) must end the turn by itself (the model is written with
//     `random-model --stop-after 16`, which makes its end-of-turn tokens likely: replies of ~16 random tokens on
//     average, never empty), so the CLI exits 0 and prints the model's text; the server answers only 2xx and
//     bills the real prompt size.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { claudeBin, missingTestData, runClaude, startServer, statusOf, testDataDir } from './helpers.mjs';

const binary = process.env.PENSIEVE_BINARY;
const fakeServer = process.env.PENSIEVE_FAKE_SERVER;
const qwen3 = `${testDataDir}/tokenizers/qwen3`;
const noData = missingTestData('claude_code.test.mjs', 'tokenizers/qwen3/tokenizer_config.json');
const haveClaude = fs.existsSync(claudeBin);
let tmp;

before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-cc-')); });
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

function runClaudeHere(baseURL, args, timeoutMs, env = {}) {
  return runClaude({ baseURL, args, home: path.join(tmp, 'home'), cwd: path.join(tmp, 'work'), timeoutMs, env });
}

function non2xx(server) {
  return server.requestLines().filter((l) => statusOf(l) < 200 || statusOf(l) >= 300);
}

test('claude -p hello against the fake-engine server exits 0 with the model text, only 2xx',
  { skip: !fakeServer || !haveClaude ? 'needs pensieve_fake_server and node_modules/.bin/claude' : false, timeout: 300000 }, async () => {
    const server = await startServer(fakeServer, ['--port', '0', '--ctx', '400000']);
    try {
      const r = await runClaudeHere(server.baseURL, ['-p', 'hello', '--model', 'fake-model', '--output-format', 'json'], 240000);
      const detail = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nserver:\n${server.log.join('\n')}`;
      assert.equal(r.code, 0, detail);
      const result = JSON.parse(r.stdout.trim().split('\n').pop());
      assert.equal(result.is_error, false, detail);
      assert.ok(result.result.length > 0, detail);
      assert.ok(result.usage.input_tokens > 10000, detail);  // Claude Code's real prompt, byte-tokenized
      assert.ok(server.requestLines().some((l) => l.includes('POST /v1/messages')), detail);
      assert.deepEqual(non2xx(server), [], detail);
    } finally {
      await server.stop();
    }
  });

const demoModel = path.resolve('../../models/demo');
test('claude -p hello against pensieve serve on the demo model exits 0, prints its text, only 2xx',
  // Claude Code's first turn is ~30.6k demo-tokenizer tokens: about 40-60 s of prefill on 2 cores.
  { skip: !binary || !fs.existsSync(binary) || !fs.existsSync(`${demoModel}/config.json`) || !haveClaude
      ? 'needs the pensieve binary, models/demo and node_modules/.bin/claude' : false, timeout: 600000 }, async () => {
    const server = await startServer(binary, ['serve', '--port', '0']);  // no --model: the demo model
    try {
      const r = await runClaudeHere(server.baseURL, ['-p', 'hello', '--model', 'demo', '--output-format', 'json'], 570000);
      const detail = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nserver:\n${server.log.join('\n')}`;
      assert.equal(r.code, 0, detail);
      const result = JSON.parse(r.stdout.trim().split('\n').pop());
      assert.equal(result.is_error, false, detail);
      assert.ok(result.result.length > 0, detail);
      assert.ok(result.usage.input_tokens > 5000, detail);
      assert.deepEqual(non2xx(server), [], detail);
    } finally {
      await server.stop();
    }
  });

test('claude -p hello against pensieve serve on a random-weight Qwen3-template model exits 0 with its text, only 2xx',
  // Time on the shared 2-core dev machine (2026-11-26): the 18,723-token first turn took 9-12 s of prefill at
  // load ~2.5, 21-27 s at load ~5 and 71 s beside a parallel build; the whole test 24-25 s. Replies: 4-100 tokens.
  { skip: !binary || !fs.existsSync(binary) || !haveClaude ? 'needs the pensieve binary and node_modules/.bin/claude'
    : noData || false, timeout: 900000 }, async () => {
    const model = path.join(tmp, 'model');
    const made = spawnSync(binary, ['random-model', '--shape', 'tiny', '--ctx', '65536', '--vocab', '151936', '--tokenizer', qwen3,
      '--stop-after', '16', model], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const server = await startServer(binary, ['serve', '--model', model, '--port', '0', '--name', 'qwen3-local']);
    try {
      // No CLAUDE_CODE_MAX_OUTPUT_TOKENS: the model ends its turn itself (max_tokens stays Claude Code's 32000).
      const r = await runClaudeHere(server.baseURL, ['-p', 'hello', '--model', 'qwen3-local', '--output-format', 'json'], 840000);
      const detail = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nserver:\n${server.log.join('\n')}`;
      assert.equal(r.code, 0, detail);
      const result = JSON.parse(r.stdout.trim().split('\n').pop());
      assert.equal(result.is_error, false, detail);
      assert.equal(result.stop_reason, 'end_turn', detail);
      assert.ok(result.result.length > 0, detail);  // the model's text (random tokens), printed
      assert.ok(result.usage.output_tokens > 0 && result.usage.output_tokens < 1000, detail);
      assert.ok(result.usage.input_tokens > 15000, detail);  // ≈19k tokens per request with the Qwen3 template
      const lines = server.requestLines();
      assert.ok(lines.some((l) => l.includes('HEAD /')), detail);
      assert.ok(lines.some((l) => l.includes('POST /v1/messages?beta=true 200')), detail);
      // Every answer 2xx, count_tokens included (2.1.197 in -p mode sends none; a later version may).
      assert.deepEqual(non2xx(server), [], detail);
    } finally {
      await server.stop();
    }
  });
