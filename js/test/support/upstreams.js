// HTTPS upstreams for tests: Node's own TLS servers on 127.0.0.1, each name with its
// own CA (SNI picks the certificate), optionally demanding a client certificate.
import { createHash } from 'node:crypto';
import https from 'node:https';
import { createSecureContext } from 'node:tls';
import { makeCa } from './certs.js';

/**
 * One server for `names` (a CA and a certificate each). `mutual` names demand a
 * client certificate of a client CA made for them. Answers `GET /` with the name and
 * the client certificate's CN, `GET /bytes/N` with N bytes, `POST /sha256` with the
 * body's hash.
 */
export async function startUpstreams(names, { mutual = [] } = {}) {
  const sites = new Map();
  for (const name of names) {
    const ca = await makeCa(`CA of ${name}`);
    const leaf = await ca.issue({ cn: name, dns: [name], ips: ['127.0.0.1'] });
    const site = { name, ca, leaf, trust: { caBundle: ca.pem } };
    if (mutual.includes(name)) {
      const clientCa = await makeCa(`client CA of ${name}`);
      site.client = await clientCa.issue({ cn: `gateway for ${name}`, client: true });
      site.clientCa = clientCa;
      site.trust = { caBundle: ca.pem, clientCertificate: site.client.certPem, clientKey: site.client.keyPem };
    }
    site.context = createSecureContext({
      cert: leaf.certPem,
      key: leaf.keyPem,
      ...(site.clientCa ? { ca: site.clientCa.pem } : {}),
    });
    site.requests = 0;
    sites.set(name, site);
  }
  const first = sites.get(names[0]);
  const server = https.createServer({
    cert: first.leaf.certPem,
    key: first.leaf.keyPem,
    requestCert: mutual.length > 0,
    rejectUnauthorized: false,
    SNICallback: (servername, cb) => cb(null, (sites.get(servername) ?? first).context),
  }, (req, res) => {
    const site = sites.get(req.socket.servername) ?? first;
    if (site.clientCa && !req.socket.authorized) {
      res.writeHead(403).end('a client certificate of the client CA is required');
      return;
    }
    site.requests += 1;
    if (req.method === 'POST' && req.url === '/sha256') {
      const hash = createHash('sha256');
      req.on('data', (d) => hash.update(d));
      req.on('end', () => res.end(hash.digest('hex')));
      return;
    }
    const bytes = req.url.match(/^\/bytes\/(\d+)$/);
    if (bytes) {
      const n = Number(bytes[1]);
      res.writeHead(200, { 'content-length': n });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let left = n;
      const pump = () => {
        while (left > 0) {
          const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= piece.length;
          if (!res.write(piece)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    const peer = req.socket.getPeerCertificate?.();
    res.end(JSON.stringify({ name: site.name, client: peer?.subject?.CN ?? null }));
  });
  server.keepAliveTimeout = 30000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    sites,
    site: (name) => sites.get(name),
    close: () => new Promise((r) => {
      server.closeAllConnections?.();
      server.close(r);
    }),
  };
}

/** GET or POST through `https.request` with `options`; resolves `{ status, body, socket }`. */
export function fetchVia(options, body) {
  return new Promise((resolve, reject) => {
    const req = https.request(options, (res) => {
      const { socket } = res;
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks), socket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
