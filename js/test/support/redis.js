// A real redis-server on a free port of 127.0.0.1 for one test file, as the Rust tests
// start one (tests/support/redis_server.rs).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function answers(port) {
  return new Promise((resolve) => {
    const c = createConnection({ host: '127.0.0.1', port }, () => c.write('PING\r\n'));
    c.once('data', (d) => {
      c.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    c.once('error', () => resolve(false));
  });
}

export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-auth-redis-'));
  const port = await freePort();
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir,
    '--appendonly', 'no', '--save', '', '--daemonize', 'no', '--logfile', join(dir, 'redis.log')], { stdio: 'ignore' });
  const failed = new Promise((_, reject) => child.once('error', (e) => reject(new Error(`redis-server did not start (is it installed?): ${e.message}`))));
  const deadline = Date.now() + 10000;
  for (;;) {
    if (await Promise.race([answers(port), failed])) break;
    if (Date.now() > deadline) throw new Error('redis-server did not answer within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
