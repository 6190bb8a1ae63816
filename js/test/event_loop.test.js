// The gateway's thread is never blocked by a token request: the OAuth instance waits in
// its worker while this thread keeps turning.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayAuth, TransportError } from '../src/index.js';
import { slotIndex } from '../src/plugin.js';
import { startDevServer } from './support/devserver.js';

let server;
before(async () => {
  server = await startDevServer('--token-delay-ms', '1500');
});
after(() => server?.stop());

/** How long the event loop was busy at a stretch while `f` ran: between two ticks of a
 * 1 ms timer, the loop's active time (event loop utilization), so a wake-up the
 * machine's other load delayed is not counted; a garbage collection pause is. */
async function busiestStretch(f) {
  let busiest = 0;
  let ticks = 0;
  let mark = performance.eventLoopUtilization();
  const probe = setInterval(() => {
    busiest = Math.max(busiest, performance.eventLoopUtilization(mark).active);
    mark = performance.eventLoopUtilization();
    ticks += 1;
  }, 1);
  const started = performance.now();
  try {
    const value = await f();
    return { busiest, ticks, took: performance.now() - started, value };
  } finally {
    clearInterval(probe);
  }
}

test('the event loop keeps turning while token requests wait 1.5 s on a slow server: busy under 10 ms at a stretch', async () => {
  const auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
  try {
    // Warm up (instance, TLS cache, JIT) with a first slow request.
    await auth.requestToken(server.client(), 'client-credentials');
    const runs = [];
    for (let i = 0; i < 3; i += 1) {
      runs.push(await busiestStretch(() => auth.requestToken(server.client(), 'client-credentials')));
    }
    for (const run of runs) {
      assert.equal(run.value.tokenType, 'Bearer');
      assert.ok(run.took >= 1450, `the server delayed the answer (${run.took.toFixed(0)} ms)`);
      assert.ok(run.ticks > 300, `${run.ticks} timer ticks while waiting`);
      // A loop blocked by the request would be busy for the whole 1.5 s.
      assert.ok(run.busiest < 50, `the loop was busy ${run.busiest.toFixed(1)} ms at a stretch`);
    }
    // The median request: on a loaded machine one stretch may catch a collection
    // pause or a preemption, neither of which is the token request's doing.
    const median = runs.map((r) => r.busiest).sort((a, b) => a - b)[1];
    assert.ok(median < 10, `busy ${runs.map((r) => r.busiest.toFixed(1)).join(', ')} ms at a stretch`);
  } finally {
    await auth.close();
  }
});

test('with two workers a slow token request holds up only the sessions of its own worker', async () => {
  const auth = await GatewayAuth.open({ egress: ['127.0.0.1'], workers: 2 });
  try {
    // Session keys that live on worker 0 and on worker 1.
    const keys = Array.from({ length: 20 }, (_, i) => `gateway-${i}`);
    const onFirst = keys.find((k) => slotIndex(k, 2) === 0);
    const onSecond = keys.find((k) => slotIndex(k, 2) === 1);
    await auth.openSession(onFirst, server.client(), 'client-credentials');
    await auth.openSession(onSecond, server.client(), 'client-credentials');
    await Promise.all([auth.accessToken(onFirst), auth.accessToken(onSecond)]);
    // A token request the slow server answers after 1.5 s, on worker 0 (the first
    // session's worker is made the busy one by asking its session for a new token).
    await auth.openSession(`${onFirst}`, server.client({ scopes: ['fresh'] }), 'client-credentials');
    const slow = auth.accessToken(onFirst);
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    const cached = await auth.accessToken(onSecond);
    const waited = performance.now() - started;
    assert.ok(cached.accessToken);
    assert.ok(waited < 300, `the other worker's session answered after ${waited.toFixed(0)} ms`);
    await slow;
    const metrics = await auth.metrics();
    assert.equal(metrics.oauthWorkers.length, 2);
    const sent = metrics.oauthWorkers.flatMap((m) => m.tokenRequests);
    assert.ok(sent.every((r) => r.grant === 'client_credentials' && typeof r.count === 'number'), JSON.stringify(sent));
    assert.equal(sent.reduce((n, r) => n + r.count, 0), 3, 'three tokens were requested');
    const histogram = metrics.oauthWorkers[0].tokenRequestDurations[0];
    assert.ok(histogram.boundsMs.length > 3 && histogram.boundsMs.every((b) => typeof b === 'number'));
    assert.ok(histogram.sumMs >= 1400, 'the slow request is in the histogram');
  } finally {
    await auth.close();
  }
});

test('with one worker, calls wait for the token request ahead of them', async () => {
  const auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
  try {
    await auth.openSession('cached', server.client(), 'client-credentials');
    await auth.accessToken('cached');
    const slow = auth.requestToken(server.client(), 'client-credentials');
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    await auth.accessToken('cached');
    const waited = performance.now() - started;
    await slow;
    assert.ok(waited > 1000, `answered after ${waited.toFixed(0)} ms, behind the slow request`);
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
