// Claude Code for real (issue 4 acceptance): the pinned @anthropic-ai/claude-code CLI in print mode against
// `pensieve serve` on a random-weight model with the Qwen3 tokenizer and its tool-capable chat template,
// 64k context. `claude -p hello` must exit 0 and the server must answer only 2xx.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync, spawn } from 'node:child_process';
import { startServer, statusOf } from './helpers.mjs';

const binary = process.env.PENSIEVE_BINARY;
const qwen3 = `${process.env.PENSIEVE_SHARED_DIR ?? '../../../shared'}/data/tokenizers/qwen3`;
const claude = path.resolve('node_modules/.bin/claude');
const skip = !binary || !fs.existsSync(binary) || !fs.existsSync(`${qwen3}/tokenizer.json`) || !fs.existsSync(claude)
  ? 'needs the pensieve binary, shared/data/tokenizers/qwen3 and node_modules/.bin/claude' : false;
let tmp;
let server;

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-cc-'));
  const made = spawnSync(binary, ['random-model', '--shape', 'tiny', '--ctx', '65536', '--vocab', '151936', '--tokenizer', qwen3,
    path.join(tmp, 'model')], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  server = await startServer(binary, ['serve', '--model', path.join(tmp, 'model'), '--port', '0', '--threads', '2', '--name', 'qwen3-local']);
});
after(async () => {
  if (server) await server.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function runClaude(args, timeoutMs) {
  const home = path.join(tmp, 'home');
  fs.mkdirSync(home, { recursive: true });
  fs.writeFileSync(path.join(home, '.claude.json'), JSON.stringify({ hasCompletedOnboarding: true }));
  return new Promise((resolve) => {
    const child = spawn(claude, args, {
      cwd: tmp,
      env: {
        PATH: process.env.PATH, HOME: home,
        ANTHROPIC_BASE_URL: server.baseURL, ANTHROPIC_AUTH_TOKEN: 'local',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', DISABLE_TELEMETRY: '1',
        // A random-weight model rarely samples EOS: keep its answers short so the test stays bounded.
        CLAUDE_CODE_MAX_OUTPUT_TOKENS: '64',
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

test('claude -p hello exits 0 and the server answers only 2xx', { skip, timeout: 600000 }, async () => {
  const r = await runClaude(['-p', 'hello', '--model', 'qwen3-local', '--output-format', 'json'], 540000);
  const lines = server.requestLines();
  assert.equal(r.code, 0, `claude exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nserver:\n${server.log.join('\n')}`);
  const result = JSON.parse(r.stdout.trim().split('\n').pop());
  assert.equal(result.is_error, false, r.stdout);
  assert.ok(result.usage.input_tokens > 1000, r.stdout);  // the real ~19k-token Claude Code prompt was billed
  assert.ok(lines.some((l) => l.includes('/v1/messages')), lines.join('\n'));
  assert.deepEqual(lines.filter((l) => statusOf(l) < 200 || statusOf(l) >= 300), [], server.log.join('\n'));
});
