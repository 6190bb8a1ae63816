// The gateway's thread is never blocked by a token request: the OAuth instance waits in
// its worker while this thread keeps turning.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayAuth, TransportError } from '../src/index.js';
import { startDevServer } from './support/devserver.js';

let server;
before(async () => {
  server = await startDevServer('--token-delay-ms', '1500');
});
after(() => server?.stop());

test('the event loop is never busy more than 10 ms at a stretch while a token request waits 1.5 s on a slow server', async () => {
  const auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
  try {
    // Warm up (instance, TLS cache, JIT) with a first slow request.
    await auth.requestToken(server.client(), 'client-credentials');
    // Between two ticks of a 1 ms timer, how long the loop was busy (running code,
    // this thread's part of the token request included) and how long the gap was on
    // the wall clock (which also counts the machine's other load delaying the wake-up).
    let busiest = 0;
    let widest = 0;
    let ticks = 0;
    let last = performance.now();
    let mark = performance.eventLoopUtilization();
    const probe = setInterval(() => {
      const now = performance.now();
      const since = performance.eventLoopUtilization(mark);
      mark = performance.eventLoopUtilization();
      busiest = Math.max(busiest, since.active);
      widest = Math.max(widest, now - last);
      last = now;
      ticks += 1;
    }, 1);
    const started = performance.now();
    const token = await auth.requestToken(server.client(), 'client-credentials');
    const took = performance.now() - started;
    clearInterval(probe);
    assert.equal(token.tokenType, 'Bearer');
    assert.ok(took >= 1450, `the server delayed the answer (${took.toFixed(0)} ms)`);
    assert.ok(ticks > 300, `${ticks} timer ticks while waiting`);
    assert.ok(busiest < 10, `the loop was busy ${busiest.toFixed(1)} ms at a stretch (widest gap ${widest.toFixed(1)} ms)`);
  } finally {
    await auth.close();
  }
});

test('closing the plugin during a slow token request ends the request at once', async () => {
  const auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
  const pending = auth.requestToken(server.client(), 'client-credentials').then(() => null, (e) => e);
  await new Promise((r) => setTimeout(r, 300));
  const started = Date.now();
  await auth.close();
  const error = await pending;
  assert.ok(Date.now() - started < 500, `closed after ${Date.now() - started} ms`);
  assert.match(String(error), /closed/);
  await assert.rejects(auth.accessToken('any'), /closed/);
});

test('a server dripping its answer a byte at a time cannot stretch a token request past the client deadline', async () => {
  const drip = await startDevServer('--token-drip-ms', '40');
  const auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
  try {
    const started = Date.now();
    const error = await auth.requestToken(drip.client({ timeoutMs: 1200 }), 'client-credentials').then(() => null, (e) => e);
    const took = Date.now() - started;
    assert.ok(error instanceof TransportError, String(error));
    assert.equal(error.netError, 'timeout');
    assert.ok(took >= 1100 && took < 2000, `ended after ${took} ms`);
  } finally {
    await auth.close();
    drip.stop();
  }
});
