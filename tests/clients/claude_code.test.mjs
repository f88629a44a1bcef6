// Claude Code for real (issue 4 acceptance): the pinned @anthropic-ai/claude-code CLI in print mode
// (`claude -p hello`, temporary HOME, ANTHROPIC_BASE_URL) against
//  1. pensieve_fake_server (the real HTTP server and Anthropic adapter over a scripted engine whose answer ends
//     its turn): the CLI must exit 0, print the model's text, and the server must answer only 2xx;
//  2. `pensieve serve` on a random-weight model with the Qwen3 tokenizer and its tool-capable chat template at
//     64k context: the whole real pipeline (template with CC's 24 tools, a role:system last message, adaptive
//     thinking, ~19k-token prefill with keep-alives) must answer only 2xx and bill the real prompt size. A
//     random-weight model practically never samples EOS, so the CLI ends with "exceeded the N output token
//     maximum" (exit 1) there; that message, and nothing else, is accepted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync, spawn } from 'node:child_process';
import { startServer, statusOf } from './helpers.mjs';

const binary = process.env.PENSIEVE_BINARY;
const fakeServer = process.env.PENSIEVE_FAKE_SERVER;
const qwen3 = `${process.env.PENSIEVE_SHARED_DIR ?? '../../../shared'}/data/tokenizers/qwen3`;
const claude = path.resolve('node_modules/.bin/claude');
const haveClaude = fs.existsSync(claude);
let tmp;

before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-cc-')); });
after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

function runClaude(baseURL, args, timeoutMs, extraEnv = {}) {
  const home = path.join(tmp, 'home');
  const work = path.join(tmp, 'work');
  fs.mkdirSync(home, { recursive: true });
  fs.mkdirSync(work, { recursive: true });
  fs.writeFileSync(path.join(home, '.claude.json'), JSON.stringify({ hasCompletedOnboarding: true }));
  return new Promise((resolve) => {
    const child = spawn(claude, args, {
      cwd: work,
      env: {
        PATH: process.env.PATH, HOME: home,
        ANTHROPIC_BASE_URL: baseURL, ANTHROPIC_AUTH_TOKEN: 'local',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', DISABLE_TELEMETRY: '1',
        ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

function non2xx(server) {
  return server.requestLines().filter((l) => statusOf(l) < 200 || statusOf(l) >= 300);
}

test('claude -p hello against the fake-engine server exits 0 with the model text, only 2xx',
  { skip: !fakeServer || !haveClaude ? 'needs pensieve_fake_server and node_modules/.bin/claude' : false, timeout: 300000 }, async () => {
    const server = await startServer(fakeServer, ['--port', '0', '--ctx', '400000']);
    try {
      const r = await runClaude(server.baseURL, ['-p', 'hello', '--model', 'fake-model', '--output-format', 'json'], 240000);
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

test('claude -p hello against pensieve serve on a random-weight Qwen3-template model: only 2xx, real prompt billed',
  { skip: !binary || !fs.existsSync(binary) || !fs.existsSync(`${qwen3}/tokenizer_config.json`) || !haveClaude
    ? 'needs the pensieve binary, shared/data/tokenizers/qwen3 and node_modules/.bin/claude' : false, timeout: 900000 }, async () => {
    const model = path.join(tmp, 'model');
    const made = spawnSync(binary, ['random-model', '--shape', 'tiny', '--ctx', '65536', '--vocab', '151936', '--tokenizer', qwen3, model],
      { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    // random-model copies tokenizer.json but not the gzip-compressed copy the shared data ships.
    for (const f of ['tokenizer.json', 'tokenizer.json.gz']) {
      if (fs.existsSync(path.join(qwen3, f)) && !fs.existsSync(path.join(model, f))) fs.copyFileSync(path.join(qwen3, f), path.join(model, f));
    }
    const server = await startServer(binary, ['serve', '--model', model, '--port', '0', '--name', 'qwen3-local']);
    try {
      // Keep the random model's answers short: it would otherwise generate until max_tokens (32000).
      const r = await runClaude(server.baseURL, ['-p', 'hello', '--model', 'qwen3-local', '--output-format', 'json'], 840000,
        { CLAUDE_CODE_MAX_OUTPUT_TOKENS: '8' });
      const detail = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nserver:\n${server.log.join('\n')}`;
      const result = JSON.parse(r.stdout.trim().split('\n').pop());
      if (r.code !== 0) assert.match(result.result, /exceeded the \d+ output token maximum/, detail);
      assert.ok(result.usage.input_tokens > 15000, detail);  // ≈19k tokens per request with the Qwen3 template
      const lines = server.requestLines();
      assert.ok(lines.some((l) => l.includes('HEAD /')), detail);
      assert.ok(lines.some((l) => l.includes('POST /v1/messages?beta=true 200')), detail);
      assert.deepEqual(non2xx(server), [], detail);
    } finally {
      await server.stop();
    }
  });
