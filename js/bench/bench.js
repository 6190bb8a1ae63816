// Side-by-side figures for the JavaScript host, in one run:
// - token request latency and a cached session accessToken through this host, next to
//   the Rust host (`gateway-auth bench`, the binary next to the tests; its own dev
//   server), both against the development authorization server on 127.0.0.1;
// - upstream request latency (keep-alive, 1 KiB out, 4 KiB back) and bulk download
//   MiB/s through the plugin's TLS streams, next to Node's own `tls` (https.Agent), to
//   one Node HTTPS server on 127.0.0.1.
// Usage: npm run bench [-- --no-rust] [--samples N]
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import https from 'node:https';
import { GatewayAuth } from '../src/index.js';
import { BINARY, startDevServer } from '../test/support/devserver.js';
import { makeCa } from '../test/support/certs.js';

const args = process.argv.slice(2);
const withRust = !args.includes('--no-rust');
const scale = Number(args[args.indexOf('--samples') + 1]) || 1;

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { median: at(0.5), p99: at(0.99), samples: sorted.length };
}

const fmt = (ms) => (ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(1)} µs`);
const line = (label, s) => console.log(`  ${label.padEnd(52)} median ${fmt(s.median).padStart(10)}   p99 ${fmt(s.p99).padStart(10)}   (${s.samples} samples)`);

async function time(n, f) {
  const out = [];
  for (let i = 0; i < n; i += 1) {
    const t = performance.now();
    await f(i);
    out.push(performance.now() - t);
  }
  return out;
}

/** The Rust host's figures from `gateway-auth bench` (its table on stderr). */
function rustBench() {
  return new Promise((resolve, reject) => {
    // Its Python peers come from the environment ./run test makes (target/python).
    const venv = fileURLToPath(new URL('../../target/python/bin', import.meta.url));
    const env = { ...process.env, PATH: existsSync(venv) ? `${venv}:${process.env.PATH}` : process.env.PATH };
    const child = spawn(BINARY, ['bench', '--rounds', '1', '--scale', '300', '--largest-cache', '100', '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`gateway-auth bench failed (${code}): ${err.slice(-500)}`));
        return;
      }
      const figure = (label) => {
        const m = err.match(new RegExp(`${label}\\s+median\\s+([\\d.]+) (µs|ms)\\s+p99\\s+([\\d.]+) (µs|ms)\\s+\\((\\d+) samples\\)`));
        if (!m) return null;
        const ms = (v, unit) => Number(v) / (unit === 'µs' ? 1000 : 1);
        return { median: ms(m[1], m[2]), p99: ms(m[3], m[4]), samples: Number(m[5]) };
      };
      resolve({
        json: JSON.parse(out),
        tokenRequest: figure('token request(?:, plugin)? \\(new connection, resumed TLS\\)'),
        cachedToken: figure('session access token, cached'),
        keepAlive: figure('keep-alive request \\(1 KiB out, 4 KiB back\\), plugin'),
      });
    });
  });
}

async function tokens() {
  const server = await startDevServer();
  const auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
  try {
    const client = server.client();
    await time(10, () => auth.requestToken(client, 'client-credentials'));
    const request = summary(await time(50 * scale, () => auth.requestToken(client, 'client-credentials')));
    await auth.openSession('bench', client, 'client-credentials');
    await time(200, () => auth.accessToken('bench'));
    const cached = summary(await time(2000 * scale, () => auth.accessToken('bench')));
    return { request, cached };
  } finally {
    await auth.close();
    server.stop();
  }
}

async function upstream() {
  const ca = await makeCa('bench upstream CA');
  const leaf = await ca.issue();
  const reply = Buffer.alloc(4096, 0x62);
  const bulk = Buffer.alloc(1024 * 1024, 0x63);
  const handler = (req, res) => {
    const m = req.url.match(/^\/bulk\/(\d+)$/);
    if (m) {
      let left = Number(m[1]);
      res.writeHead(200, { 'content-length': left * bulk.length });
      const pump = () => {
        while (left > 0) {
          left -= 1;
          if (!res.write(bulk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    req.resume();
    req.on('end', () => res.end(reply));
  };
  const listen = async (options) => {
    const server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem, ...options }, handler);
    server.keepAliveTimeout = 60000;
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    return server;
  };
  // The server's choice of cipher suite (AES-256-GCM), and one offering ChaCha20 only
  // (the suite the Rust bench's bulk figure uses, and the fast one without AES
  // instructions in WebAssembly).
  const server = await listen({});
  const chacha = await listen({ ciphers: 'TLS_CHACHA20_POLY1305_SHA256' });
  const { port } = server.address();
  const auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
  const agents = {
    plugin: auth.agent({ caBundle: ca.pem }),
    node: new https.Agent({ keepAlive: true, ca: ca.pem }),
  };
  const get = (agent, path, body, to = port) => new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: to, path, method: body ? 'POST' : 'GET', agent, headers: body ? { 'content-length': body.length } : {} }, (res) => {
      let n = 0;
      const suite = res.socket.info?.()?.cipherSuite ?? res.socket.getCipher?.()?.standardName;
      res.on('data', (d) => { n += d.length; });
      res.on('end', () => resolve({ bytes: n, suite }));
    });
    req.on('error', reject);
    req.end(body);
  });
  const out = {};
  try {
    const body = Buffer.alloc(1024, 0x61);
    for (const name of ['plugin', 'node']) await time(50, () => get(agents[name], '/', body));
    const samples = { plugin: [], node: [] };
    for (let round = 0; round < 4; round += 1) {
      for (const name of ['plugin', 'node']) samples[name].push(...await time(50 * scale, () => get(agents[name], '/', body)));
    }
    out.keepAlive = { plugin: summary(samples.plugin), node: summary(samples.node) };
    const MIB = 32;
    out.bulk = {};
    out.bulkChacha = {};
    for (const [key, to] of [['bulk', port], ['bulkChacha', chacha.address().port]]) {
      for (const name of ['plugin', 'node']) {
        await get(agents[name], '/bulk/2', undefined, to);
        const t = performance.now();
        const { bytes, suite } = await get(agents[name], `/bulk/${MIB}`, undefined, to);
        const seconds = (performance.now() - t) / 1000;
        out[key][name] = { mibPerS: bytes / 1024 / 1024 / seconds, suite };
      }
    }
    return out;
  } finally {
    agents.plugin.destroy();
    agents.node.destroy();
    await auth.close();
    for (const s of [server, chacha]) {
      s.closeAllConnections();
      s.close();
    }
  }
}

const child = (flags) => new Promise((resolve, reject) => {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const run = spawn(process.execPath, [...flags, new URL(import.meta.url).pathname, '--js', '--samples', String(scale)], { stdio: ['ignore', 'pipe', 'inherit'], env });
  let out = '';
  run.stdout.on('data', (d) => { out += d; });
  run.on('error', reject);
  run.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`the JS bench failed (${code})`))));
});

if (args.includes('--js')) {
  // One measuring process: figures as JSON on stdout.
  const figures = { tokens: await tokens(), upstream: await upstream() };
  process.stdout.write(JSON.stringify(figures));
} else {
  console.log(`JavaScript host (Node ${process.version}) next to the Rust host (${BINARY}) and Node's own tls`);
  // One after the other, so no figure is taken while another process is busy.
  const rustFigures = withRust ? await rustBench() : null;
  const js = await child([]);
  // V8 runs WebAssembly in its baseline compiler (Liftoff) until a function is hot;
  // --no-liftoff compiles every function with the optimizing compiler at first call.
  const optimized = await child(['--no-liftoff']);

  console.log('token requests (development server, client credentials, client_secret_basic)');
  line('token request, JS host', js.tokens.request);
  line('token request, JS host, node --no-liftoff', optimized.tokens.request);
  if (rustFigures?.tokenRequest) line('token request, Rust host (new connection, resumed)', rustFigures.tokenRequest);
  line('session accessToken, cached, JS host', js.tokens.cached);
  line('session accessToken, cached, JS host, --no-liftoff', optimized.tokens.cached);
  if (rustFigures?.cachedToken) line('session access token, cached, Rust host', rustFigures.cachedToken);
  const up = js.upstream;
  console.log('upstream requests (one Node HTTPS server on 127.0.0.1, keep-alive, 1 KiB out, 4 KiB back)');
  line("keep-alive request, plugin's TLS stream", up.keepAlive.plugin);
  line("keep-alive request, plugin's TLS stream, --no-liftoff", optimized.upstream.keepAlive.plugin);
  line("keep-alive request, Node's tls", up.keepAlive.node);
  console.log(`  plugin / Node: ${(up.keepAlive.plugin.median / up.keepAlive.node.median).toFixed(2)}x (--no-liftoff ${(optimized.upstream.keepAlive.plugin.median / optimized.upstream.keepAlive.node.median).toFixed(2)}x)`);
  if (rustFigures?.keepAlive) line('keep-alive request, Rust host plugin (its own server)', rustFigures.keepAlive);
  console.log('bulk download, 32 MiB');
  console.log(`  plugin's TLS stream ${up.bulk.plugin.mibPerS.toFixed(0)} MiB/s (${up.bulk.plugin.suite}; --no-liftoff ${optimized.upstream.bulk.plugin.mibPerS.toFixed(0)} MiB/s), Node's tls ${up.bulk.node.mibPerS.toFixed(0)} MiB/s (${up.bulk.node.suite}): ${(up.bulk.plugin.mibPerS / up.bulk.node.mibPerS).toFixed(3)} of Node`);
  const chachaJs = up.bulkChacha;
  console.log(`  ChaCha20 only: plugin's TLS stream ${chachaJs.plugin.mibPerS.toFixed(0)} MiB/s (${chachaJs.plugin.suite}; --no-liftoff ${optimized.upstream.bulkChacha.plugin.mibPerS.toFixed(0)} MiB/s), Node's tls ${chachaJs.node.mibPerS.toFixed(0)} MiB/s (${chachaJs.node.suite}): ${(chachaJs.plugin.mibPerS / chachaJs.node.mibPerS).toFixed(3)} of Node`);
  if (rustFigures) console.log(`  Rust host plugin ${rustFigures.json.bulk_mib_per_s.plugin} MiB/s, native rustls ${rustFigures.json.bulk_mib_per_s.native} MiB/s (its own server, TLS13_CHACHA20_POLY1305_SHA256)`);
}
