// Upstream requests with Node's own HTTP client over the plugin's TLS: `https.request`
// with `createConnection`, and an `https.Agent` that keeps connections alive.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer as createTlsServer } from 'node:tls';
import { Agent as UndiciAgent, request as undiciRequest } from 'undici';
import { GatewayAuth, TlsError, TransportError } from '../src/index.js';
import { fetchVia, startUpstreams } from './support/upstreams.js';
import { makeCa } from './support/certs.js';

describe('upstream TLS streams', () => {
  let upstreams;
  let auth;
  before(async () => {
    upstreams = await startUpstreams(['a.upstream.test', 'b.upstream.test', 'mtls.upstream.test'], { mutual: ['mtls.upstream.test'] });
    auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
  });
  after(async () => {
    await auth?.close();
    await upstreams?.close();
  });

  const request = (name, trust, extra = {}, body = undefined) => fetchVia({
    host: '127.0.0.1',
    port: upstreams.port,
    servername: name,
    headers: { host: name },
    path: '/',
    createConnection: auth.createConnection(trust),
    ...extra,
  }, body);

  test('https.request reaches upstreams that each have their own CA', async () => {
    for (const name of ['a.upstream.test', 'b.upstream.test']) {
      const { status, body } = await request(name, upstreams.site(name).trust);
      assert.equal(status, 200);
      assert.equal(JSON.parse(body).name, name);
    }
  });

  test('an upstream demanding mutual TLS gets the client certificate of the trust material', async () => {
    const site = upstreams.site('mtls.upstream.test');
    const { status, body } = await request(site.name, site.trust);
    assert.equal(status, 200);
    assert.equal(JSON.parse(body).client, 'gateway for mtls.upstream.test');
    assert.equal((await auth.prepare(site.trust)).mutualTls, true);
    const without = await request(site.name, { caBundle: site.ca.pem });
    assert.equal(without.status, 403, 'no client certificate was presented');
  });

  test('an upstream whose certificate no trusted CA issued fails with a TlsError before any request is sent', async () => {
    const site = upstreams.site('a.upstream.test');
    const before = site.requests;
    const stranger = await makeCa('stranger');
    const error = await request(site.name, { caBundle: stranger.pem }).then(() => null, (e) => e);
    assert.ok(error instanceof TlsError, String(error));
    assert.equal(error.code, 'peer-certificate');
    assert.equal(site.requests, before);
    const wrongName = await request('b.upstream.test', { caBundle: site.ca.pem }).then(() => null, (e) => e);
    assert.ok(wrongName instanceof TlsError, String(wrongName));
  });

  test('upstream streams obey the egress policy: a destination no rule allows is refused before any packet', async () => {
    const strict = await GatewayAuth.open({ egress: ['upstream.example:443'] });
    try {
      const site = upstreams.site('a.upstream.test');
      const before = site.requests;
      const error = await fetchVia({
        host: '127.0.0.1', port: upstreams.port, servername: site.name, headers: { host: site.name }, path: '/', createConnection: strict.createConnection(site.trust),
      }).then(() => null, (e) => e);
      assert.ok(error instanceof TransportError, String(error));
      assert.equal(error.netError, 'denied');
      assert.equal(strict.connectionsOpened, 0);
      assert.equal(site.requests, before);
    } finally {
      await strict.close();
    }
  });

  test('undici reaches upstreams with their own CAs and mutual TLS through the plugin streams as its connect, reusing connections', async () => {
    for (const name of ['a.upstream.test', 'mtls.upstream.test']) {
      const site = upstreams.site(name);
      const connects = [];
      const connect = auth.undiciConnect(site.trust);
      const dispatcher = new UndiciAgent({ connect: (options, callback) => connect(options, (e, s) => { connects.push(s); callback(e, s); }) });
      try {
        for (let i = 0; i < 3; i += 1) {
          const { statusCode, body } = await undiciRequest(`https://127.0.0.1:${upstreams.port}/`, { dispatcher, headers: { host: name } });
          assert.equal(statusCode, 200);
          const answer = JSON.parse(await body.text());
          assert.equal(answer.name, name);
          if (site.client) assert.equal(answer.client, `gateway for ${name}`);
        }
        assert.ok(connects.length < 3, `${connects.length} connections for three requests: kept alive`);
      } finally {
        await dispatcher.close();
      }
    }
  });

  test('a keep-alive agent sends several requests over one connection, and a new connection resumes the TLS session', async () => {
    const site = upstreams.site('b.upstream.test');
    const agent = auth.agent(site.trust);
    try {
      const sockets = new Set();
      for (let i = 0; i < 5; i += 1) {
        const { status, socket } = await fetchVia({ host: '127.0.0.1', port: upstreams.port, servername: site.name, headers: { host: site.name }, path: '/', agent });
        assert.equal(status, 200);
        sockets.add(socket);
      }
      assert.equal(sockets.size, 1, 'one connection for five requests');
      const [first] = sockets;
      assert.equal(first.info().version, 'TLSv1_3');
      first.destroy();
      const { socket } = await fetchVia({ host: '127.0.0.1', port: upstreams.port, servername: site.name, headers: { host: site.name }, path: '/', agent });
      assert.notEqual(socket, first);
      assert.equal(socket.isSessionReused(), true, 'the reconnection resumed');
    } finally {
      agent.destroy();
    }
  });

  test('a 4 MiB upload and a 4 MiB download arrive intact', async () => {
    const site = upstreams.site('a.upstream.test');
    const body = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 1) body[i] = (i * 31) & 0xff;
    const up = await request(site.name, site.trust, { method: 'POST', path: '/sha256' }, body);
    assert.equal(up.status, 200);
    assert.equal(up.body.toString(), createHash('sha256').update(body).digest('hex'));
    const down = await request(site.name, site.trust, { path: `/bytes/${4 * 1024 * 1024}` });
    assert.equal(down.body.length, 4 * 1024 * 1024);
    assert.ok(down.body.every((b) => b === 0x61));
  });

  test('encrypting and decrypting megabytes never holds the event loop for long at a stretch', async () => {
    const site = upstreams.site('a.upstream.test');
    await request(site.name, site.trust);
    const body = Buffer.alloc(4 * 1024 * 1024, 0x5a);
    const stretches = [];
    for (let round = 0; round < 3; round += 1) {
      let busiest = 0;
      let mark = performance.eventLoopUtilization();
      const probe = setInterval(() => {
        busiest = Math.max(busiest, performance.eventLoopUtilization(mark).active);
        mark = performance.eventLoopUtilization();
      }, 1);
      try {
        const up = await request(site.name, site.trust, { method: 'POST', path: '/sha256' }, body);
        assert.equal(up.body.toString(), createHash('sha256').update(body).digest('hex'));
        const down = await request(site.name, site.trust, { path: `/bytes/${body.length}` });
        assert.equal(down.body.length, body.length);
      } finally {
        clearInterval(probe);
      }
      stretches.push(busiest);
    }
    // One 64 KiB slice, or one socket chunk, per turn of the loop: a few milliseconds
    // each; the 4 MiB in one go would hold it 150 ms or more in every round. The
    // median round, as a collection pause or preemption on a loaded machine can
    // stretch one.
    const median = [...stretches].sort((a, b) => a - b)[1];
    assert.ok(median < 60, `the loop was busy ${stretches.map((b) => b.toFixed(1)).join(', ')} ms at a stretch`);
  });

  test('a request head and body leave in one write: a small POST takes no Nagle stall', async () => {
    const site = upstreams.site('a.upstream.test');
    const agent = auth.agent(site.trust);
    try {
      const options = { host: '127.0.0.1', port: upstreams.port, servername: site.name, headers: { host: site.name, 'content-type': 'application/json' }, method: 'POST', path: '/sha256', agent };
      await fetchVia(options, '{"warm":true}');
      const times = [];
      for (let i = 0; i < 11; i += 1) {
        const started = performance.now();
        await fetchVia(options, '{"hello":"upstream"}');
        times.push(performance.now() - started);
      }
      times.sort((a, b) => a - b);
      // A stalled request waits for the peer's delayed ACK: about 40 ms.
      assert.ok(times[5] < 20, `median ${times[5].toFixed(1)} ms per request`);
    } finally {
      agent.destroy();
    }
  });
});

describe('a raw upstream stream', () => {
  test('ends when the peer sends close_notify, after all the plaintext it sent, and sends its own on destroy', async () => {
    const ca = await makeCa('raw upstream CA');
    const leaf = await ca.issue();
    let serverSaw = '';
    let serverEnded;
    const ended = new Promise((r) => { serverEnded = r; });
    const server = createTlsServer({ cert: leaf.certPem, key: leaf.keyPem }, (socket) => {
      socket.on('data', (d) => {
        serverSaw += d;
        if (serverSaw.endsWith('\n')) {
          socket.write('first ');
          socket.end('and last');
        }
      });
      socket.on('end', () => serverEnded(true));
      socket.on('error', () => {});
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
    try {
      const stream = auth.connect({ host: '127.0.0.1', port: server.address().port, trust: { caBundle: ca.pem }, servername: 'localhost' });
      stream.write('hello\n');
      let text = '';
      stream.on('data', (d) => { text += d; });
      await new Promise((resolve, reject) => {
        stream.once('end', resolve);
        stream.once('error', reject);
      });
      assert.equal(text, 'first and last');
      assert.equal(serverSaw, 'hello\n');
      stream.destroy();
      assert.equal(await ended, true, 'the server saw the end of the stream');
    } finally {
      await auth.close();
      server.close();
    }
  });
});

describe('the seed scenario', () => {
  test('101 upstreams with their own CAs and a cache of 100 cost exactly one eviction, and reconnections resume', { timeout: 120000 }, async () => {
    const names = Array.from({ length: 101 }, (_, i) => `u${i}.fleet.test`);
    const upstreams = await startUpstreams(names);
    const auth = await GatewayAuth.open({ egress: ['127.0.0.1'], cache: { capacity: 100 } });
    try {
      const get = (name) => fetchVia({
        host: '127.0.0.1', port: upstreams.port, servername: name, headers: { host: name, connection: 'close' }, path: '/', createConnection: auth.createConnection(upstreams.site(name).trust),
      });
      for (const name of names) {
        const { status, body } = await get(name);
        assert.equal(status, 200);
        assert.equal(JSON.parse(body).name, name);
      }
      let resumed = 0;
      for (const name of names.slice(1)) {
        const { status, socket } = await get(name);
        assert.equal(status, 200);
        if (socket.isSessionReused()) resumed += 1;
      }
      const stats = await auth.stats();
      assert.equal(stats.capacity, 100);
      assert.equal(stats.misses, 101, 'each configuration built once');
      assert.equal(stats.evictions, 1, 'exactly one upstream fell out');
      assert.equal(stats.size, 100);
      assert.equal(resumed, 100, 'every reconnection resumed its TLS session');
      assert.equal((await auth.prepare(upstreams.site(names[0]).trust)).cached, false, 'the first upstream was the one evicted');
      // By id: a hit without the material, until the entry is gone.
      const kept = await auth.prepare(upstreams.site(names[5]).trust);
      const found = await auth.lookup(kept.id);
      assert.deepEqual([found.id, found.cached], [kept.id, true]);
      assert.equal((await auth.stats()).hits, stats.hits + 2);
      await auth.invalidate(kept.id);
      const gone = await auth.lookup(kept.id).then(() => null, (e) => e);
      assert.ok(gone instanceof TlsError, String(gone));
      assert.equal(gone.code, 'unknown-profile');
    } finally {
      await auth.close();
      await upstreams.close();
    }
  });
});
