// Token stores: memory, and Redis shared by instances and by processes, with the Rust
// host's key layout and compare-and-swap.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { GatewayAuth, MemoryStore, RedisStore, StoreError, openStore } from '../src/index.js';
import { startDevServer } from './support/devserver.js';
import { startRedis } from './support/redis.js';

const bytes = (s) => new TextEncoder().encode(s);

async function contract(store) {
  assert.equal(await store.get('k'), undefined);
  assert.equal(await store.compareAndSwap('k', bytes('x'), bytes('a')), false, 'nothing stored: an expected value fails');
  assert.equal(await store.compareAndSwap('k', undefined, bytes('a')), true);
  assert.deepEqual(Buffer.from(await store.get('k')), Buffer.from('a'));
  assert.equal(await store.compareAndSwap('k', undefined, bytes('b')), false, 'a value stored: expecting none fails');
  assert.equal(await store.compareAndSwap('k', bytes('z'), bytes('b')), false);
  assert.equal(await store.compareAndSwap('k', bytes('a'), bytes('b')), true);
  assert.equal(await store.compareAndSwap('k', bytes('b'), undefined), true, 'deleted');
  assert.equal(await store.get('k'), undefined);
}

describe('stores', () => {
  let redis;
  let server;
  before(async () => {
    redis = await startRedis();
    server = await startDevServer();
  });
  after(() => {
    redis?.stop();
    server?.stop();
  });

  test('the memory store and the Redis store keep the compare-and-swap contract', async () => {
    await contract(new MemoryStore());
    const store = new RedisStore(redis.url);
    try {
      await contract(store);
    } finally {
      await store.close();
    }
  });

  test('store URLs name memory or Redis, and an unknown one is refused without its password', () => {
    assert.ok(openStore('memory:') instanceof MemoryStore);
    const r = openStore('redis://127.0.0.1:1/0?prefix=p:');
    assert.ok(r instanceof RedisStore);
    assert.equal(r.prefix, 'p:');
    assert.throws(() => openStore('rediss://u:pw@h:1/0'), /not supported/);
    assert.throws(() => openStore('mongodb://u:s3cret@h/'), (e) => !e.message.includes('s3cret'));
  });

  test('two gateways sharing a Redis store serve one session token, stored under the Rust host key layout', async () => {
    const a = await GatewayAuth.open({ egress: ['127.0.0.1'], store: redis.url });
    const b = await GatewayAuth.open({ egress: ['127.0.0.1'], store: redis.url });
    const raw = createClient({ url: redis.url });
    await raw.connect();
    try {
      await a.openSession('shared', server.client(), 'client-credentials');
      const token = await a.accessToken('shared');
      assert.ok(await raw.get('gateway-auth:shared'), 'the session record is under gateway-auth:KEY');
      const requests = await server.count('token-requests');
      await b.openSession('shared', server.client(), 'client-credentials');
      assert.equal((await b.accessToken('shared')).accessToken, token.accessToken);
      assert.equal(await server.count('token-requests'), requests, 'the second gateway requested nothing');
    } finally {
      await raw.destroy();
      await a.close();
      await b.close();
      await a.store.close();
      await b.store.close();
    }
  });

  test('another process continues the session from the Redis store', async () => {
    const a = await GatewayAuth.open({ egress: ['127.0.0.1'], store: redis.url });
    try {
      await a.openSession('across', server.client(), 'client-credentials');
      const token = await a.accessToken('across');
      const requests = await server.count('token-requests');
      // A plain process, not a test runner's child.
      const env = { ...process.env };
      delete env.NODE_TEST_CONTEXT;
      const child = spawn(process.execPath, [fileURLToPath(new URL('./support/session_child.js', import.meta.url))], {
        stdio: ['pipe', 'pipe', 'inherit'],
        env,
        timeout: 20000,
      });
      child.stdin.end(JSON.stringify({ store: redis.url, key: 'across', client: server.client() }));
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      const code = await new Promise((r) => child.on('close', r));
      assert.equal(code, 0);
      assert.equal(JSON.parse(out).accessToken, token.accessToken);
      assert.equal(await server.count('token-requests'), requests);
    } finally {
      await a.close();
      await a.store.close();
    }
  });

  test('with the store down, a refresh (single use) is refused as a StoreError and nothing is sent', async () => {
    const down = new RedisStore('redis://127.0.0.1:1/0');
    const auth = await GatewayAuth.open({ egress: ['127.0.0.1'], store: down });
    try {
      const { refreshToken } = await auth.requestToken(server.client(), { type: 'password', username: 'alice', password: 'wonder land&=%' });
      const requests = await server.count('token-requests');
      const error = await auth.openSession('down', server.client(), { type: 'refresh-token', refreshToken })
        .then(() => auth.accessToken('down'))
        .then(() => null, (e) => e);
      assert.ok(error instanceof StoreError, String(error));
      assert.match(error.message, /redis at redis:\/\/127\.0\.0\.1:1\/0/);
      assert.equal(await server.count('token-requests'), requests);
    } finally {
      await auth.close();
      await down.close();
    }
  });
});
