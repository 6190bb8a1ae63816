// Traps and missed deadlines: the call ends with an error, the OAuth instance is
// replaced by a fresh one, and the cache settings and open sessions are replayed into
// it, so the session goes on with the token the store holds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineExceededError, GatewayAuth, MemoryStore, TrapError } from '../src/index.js';
import { slotIndex } from '../src/plugin.js';
import { startDevServer } from './support/devserver.js';

/** A MemoryStore whose next `get` misbehaves as `arm` says. */
class ArmedStore extends MemoryStore {
  constructor() {
    super();
    this.next = null;
  }

  get(key) {
    const next = this.next;
    this.next = null;
    if (next === 'garbage') return 'not bytes';
    if (next === 'hang') return new Promise(() => {});
    return super.get(key);
  }
}

describe('recovery', () => {
  let server;
  before(async () => {
    server = await startDevServer();
  });
  after(() => server?.stop());

  test('a trap ends the call with TrapError and a fresh instance keeps serving the session from the store', async () => {
    const store = new ArmedStore();
    const auth = await GatewayAuth.open({ egress: ['127.0.0.1'], store, cache: { capacity: 7 } });
    try {
      await auth.openSession('kept', server.client(), 'client-credentials');
      const token = await auth.accessToken('kept');
      const requests = await server.count('token-requests');
      store.next = 'garbage';
      await assert.rejects(auth.openSession('other', server.client(), 'client-credentials'), TrapError);
      assert.equal(auth.recoveries, 1);
      assert.equal((await auth.accessToken('kept')).accessToken, token.accessToken, 'the replayed session serves the stored token');
      assert.equal(await server.count('token-requests'), requests, 'no new token was requested');
      const metrics = await auth.metrics();
      assert.equal(metrics.oauth.cache.capacity, 7, 'the cache settings were replayed');
      assert.equal(await auth.sessionStatus('other'), null, 'the session whose open trapped is not there');
    } finally {
      await auth.close();
    }
  });

  test('with two workers a trap replaces only its worker, and the sessions of both go on', async () => {
    const store = new ArmedStore();
    const auth = await GatewayAuth.open({ egress: ['127.0.0.1'], store, workers: 2 });
    try {
      const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
      const [a, b, c] = [0, 1, 0].map((slot, n) => keys.filter((k) => slotIndex(k, 2) === slot)[n === 2 ? 1 : 0]);
      await auth.openSession(a, server.client(), 'client-credentials');
      await auth.openSession(b, server.client(), 'client-credentials');
      const tokens = [await auth.accessToken(a), await auth.accessToken(b)];
      const requests = await server.count('token-requests');
      store.next = 'garbage';
      await assert.rejects(auth.openSession(c, server.client(), 'client-credentials'), TrapError);
      assert.equal(auth.recoveries, 1);
      assert.equal((await auth.accessToken(a)).accessToken, tokens[0].accessToken, 'replayed into the replacement');
      assert.equal((await auth.accessToken(b)).accessToken, tokens[1].accessToken, 'the other worker was not touched');
      assert.equal(await server.count('token-requests'), requests);
    } finally {
      await auth.close();
    }
  });

  test('a call past the call timeout ends with DeadlineExceededError by the deadline, and the replaced instance keeps the session', { timeout: 30000 }, async () => {
    const store = new ArmedStore();
    const auth = await GatewayAuth.open({ egress: ['127.0.0.1'], store, callTimeoutMs: 3500, storeWaitMs: 20000 });
    try {
      const client = server.client({ timeoutMs: 1000 });
      await auth.openSession('kept', client, 'client-credentials');
      const token = await auth.accessToken('kept');
      store.next = 'hang';
      const started = Date.now();
      const error = await auth.openSession('stuck', client, 'client-credentials').then(() => null, (e) => e);
      const took = Date.now() - started;
      assert.ok(error instanceof DeadlineExceededError, String(error));
      assert.ok(took >= 3400 && took < 4500, `ended after ${took} ms`);
      assert.equal(auth.recoveries, 1);
      assert.equal((await auth.accessToken('kept')).accessToken, token.accessToken);
    } finally {
      await auth.close();
    }
  });
});

describe('the memory limit', () => {
  let server;
  before(async () => {
    server = await startDevServer();
  });
  after(() => server?.stop());

  test('an instance over its memory limit ends the call with TrapError and is replaced; within the limit nothing is', async () => {
    const auth = await GatewayAuth.open({ egress: ['127.0.0.1'], memoryLimitBytes: 64 * 1024 * 1024 });
    // A limit below what a fresh instance holds: every call ends over it.
    const tight = await GatewayAuth.open({ egress: ['127.0.0.1'], memoryLimitBytes: 1024 });
    try {
      await auth.openSession('fits', server.client(), 'client-credentials');
      assert.ok((await auth.accessToken('fits')).accessToken);
      assert.equal(auth.recoveries, 0, 'within 64 MiB nothing is replaced');
      const error = await tight.requestToken(server.client(), 'client-credentials').then(() => null, (e) => e);
      assert.ok(error instanceof TrapError, String(error));
      assert.match(error.message, /over the limit of 1024/);
      assert.equal(tight.recoveries, 1);
    } finally {
      await auth.close();
      await tight.close();
    }
  });
});
