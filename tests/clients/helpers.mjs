// Starting and stopping servers for the client tests. The fake server prints "listening on PORT" (stdout);
// `pensieve serve --port 0` prints "serving ... on http://HOST:PORT" (stderr). Both log one line per request
// to stderr, which tests inspect (e.g. "only 2xx").
import { spawn } from 'node:child_process';

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
