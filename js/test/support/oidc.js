// oidc-provider (an OpenID Certified authorization server) on 127.0.0.1 over HTTPS with
// a test CA, with clients for client_secret_basic, private_key_jwt and the
// authorization-code grant (refresh tokens rotated on every use), revocation and
// introspection. A user's login and consent are finished programmatically.
import { generateKeyPairSync } from 'node:crypto';
import https from 'node:https';
import Provider from 'oidc-provider';
import { makeCa } from './certs.js';

export const SECRET = 'oidc-provider client secret';
export const REDIRECT_URI = 'https://gateway.example/callback';

export async function startOidcProvider() {
  const ca = await makeCa('oidc-provider test CA');
  const leaf = await ca.issue({ cn: '127.0.0.1', dns: ['localhost'], ips: ['127.0.0.1'] });
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'gateway-key', use: 'sig', alg: 'ES256' };
  const server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const issuer = `https://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'basic', client_secret: SECRET, token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'api:read',
      },
      {
        client_id: 'jwt', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] },
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'api:read',
      },
      {
        client_id: 'web', client_secret: SECRET, token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: [REDIRECT_URI],
      },
    ],
    scopes: ['openid', 'offline_access', 'api:read'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
    },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    // User access tokens live 2 s, so a session renews them (at half their life) within
    // a test.
    ttl: { AccessToken: 2 },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ['cookie signing key for tests'] },
  });
  provider.proxy = false;
  const callback = provider.callback();
  server.on('request', async (req, res) => {
    const finish = req.url.match(/^\/interaction\/([^/?]+)$/);
    if (!finish) {
      callback(req, res);
      return;
    }
    try {
      // Alice logs in and consents to what was asked.
      const details = await provider.interactionDetails(req, res);
      const grant = new provider.Grant({ accountId: 'alice', clientId: details.params.client_id });
      grant.addOIDCScope(String(details.params.scope ?? 'openid'));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId: 'alice' }, consent: { grantId } }, { mergeWithLastSubmission: false });
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });

  const request = (url, { method = 'GET', headers = {}, body } = {}) => new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, ca: ca.pem }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });

  return {
    issuer,
    caPem: ca.pem,
    trust: { caBundle: ca.pem },
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }),
    /** Follows an authorization URL through login and consent (cookies kept between
     * the hops); resolves the redirect's `{ code, state, iss }`. */
    async authorize(url) {
      const jar = new Map();
      let next = url;
      for (let hop = 0; hop < 6; hop += 1) {
        const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
        const res = await request(next, { headers: cookie ? { cookie } : {} });
        for (const set of [res.headers['set-cookie'] ?? []].flat()) {
          const [pair] = set.split(';');
          const [k, ...v] = pair.split('=');
          jar.set(k.trim(), v.join('='));
        }
        if (res.status < 300 || res.status >= 400) {
          throw new Error(`authorization stopped at ${res.status}: ${res.body.slice(0, 300)}`);
        }
        const location = new URL(res.headers.location, next);
        if (location.href.startsWith(REDIRECT_URI)) {
          const p = location.searchParams;
          if (p.get('error')) throw new Error(`authorization refused: ${p.get('error')} ${p.get('error_description')}`);
          return { code: p.get('code'), state: p.get('state'), iss: p.get('iss') };
        }
        next = location.href;
      }
      throw new Error('too many redirects');
    },
    /** RFC 7662 introspection as the `web` client: whether the token is active. */
    async active(token) {
      const res = await request(`${issuer}/token/introspection`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`web:${encodeURIComponent(SECRET).replace(/%20/g, '+')}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: `token=${encodeURIComponent(token)}`,
      });
      if (res.status !== 200) throw new Error(`introspection answered ${res.status}: ${res.body}`);
      return JSON.parse(res.body).active;
    },
    close: () => new Promise((r) => {
      server.closeAllConnections?.();
      server.close(r);
    }),
  };
}
