// Starting and stopping servers for the client tests. The fake server prints "listening on PORT" (stdout);
// `pensieve serve --port 0` prints "serving ... on http://HOST:PORT" (stderr). Both log one line per request
// to stderr, which tests inspect (e.g. "only 2xx"). runClaude runs the pinned Claude Code CLI against a server.
// missingTestData is the client tests' side of tests/test_paths.h (one rule for skipping on missing test data).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

// The test data folder: PENSIEVE_TEST_DATA (run.sh sets the configured default when it is unset).
export const testDataDir = process.env.PENSIEVE_TEST_DATA || path.resolve('../../../shared/data');

// '' when every path (relative to testDataDir) exists. Otherwise the reason to give node:test's `skip`; the skip
// is appended to $PENSIEVE_TEST_SKIP_LOG (the test_data_summary ctest test lists it) and, where test data is
// required (CI=true or PENSIEVE_REQUIRE_TEST_DATA=1), a test that fails is added, as the C++ tests fail there.
export function missingTestData(name, ...relatives) {
  const missing = relatives.filter((rel) => !fs.existsSync(path.join(testDataDir, rel)));
  if (missing.length === 0) return '';
  const what = `[test data missing] ${missing.join(', ')} under ${testDataDir}`;
  if (process.env.PENSIEVE_TEST_SKIP_LOG) {
    fs.appendFileSync(process.env.PENSIEVE_TEST_SKIP_LOG, `clients/${name} (every test in it)\t${missing.join(', ')}\n`);
  }
  if (process.env.CI === 'true' || process.env.PENSIEVE_REQUIRE_TEST_DATA === '1') {
    test(`${name}: test data present`, () => {
      throw new Error(`${what}, and test data is required here (CI=true or PENSIEVE_REQUIRE_TEST_DATA=1)`);
    });
  }
  return `${what} (set PENSIEVE_TEST_DATA or run scripts/fetch_test_data.sh)`;
}

export const claudeBin = path.resolve('node_modules/.bin/claude');

export function startServer(command, args, { timeoutMs = 120000, env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const log = [];
    let settled = false;
    const timer = setTimeout(() => {
      if (!settled) { settled = true; child.kill('SIGKILL'); reject(new Error(`server did not start: ${log.join('\n')}`)); }
    }, timeoutMs);
    const onLine = (line) => {
      log.push(line);
      const m = line.match(/listening on (\d+)/) || line.match(/on http:\/\/[^:]+:(\d+)/);
      if (m && !settled) {
        settled = true;
        clearTimeout(timer);
        const port = Number(m[1]);
        resolve({
          port, child, log,
          baseURL: `http://127.0.0.1:${port}`,
          requestLines: () => log.filter((l) => /^pensieve: [A-Z]+ \//.test(l)),
          stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); }),
        });
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream.on('data', (d) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) { onLine(buf.slice(0, i)); buf = buf.slice(i + 1); }
      });
    }
    child.on('exit', (code) => {
      if (!settled) { settled = true; clearTimeout(timer); reject(new Error(`server exited ${code}: ${log.join('\n')}`)); }
    });
  });
}

export function statusOf(line) {
  const m = line.match(/^pensieve: [A-Z]+ \S+ (\d{3})/);
  return m ? Number(m[1]) : 0;
}

// Runs `claude ...args` in cwd with HOME=home (onboarding marked done, so print mode starts at once), pointed at
// baseURL with a local token and no nonessential traffic; extra env on top. Killed after timeoutMs.
// Resolves {code, stdout, stderr}.
export function runClaude({ baseURL, args, home, cwd, timeoutMs, env = {} }) {
  fs.mkdirSync(home, { recursive: true });
  fs.mkdirSync(cwd, { recursive: true });
  fs.writeFileSync(path.join(home, '.claude.json'), JSON.stringify({ hasCompletedOnboarding: true }));
  return new Promise((resolve) => {
    const child = spawn(claudeBin, args, {
      cwd,
      env: {
        PATH: process.env.PATH, HOME: home,
        ANTHROPIC_BASE_URL: baseURL, ANTHROPIC_AUTH_TOKEN: 'local',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', DISABLE_TELEMETRY: '1',
        ...env,
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
