// oidc-provider (an OpenID Certified authorization server) on 127.0.0.1 over HTTPS with
// a test CA, with clients for client_secret_basic, private_key_jwt and the
// authorization-code grant (refresh tokens rotated on every use), revocation and
// introspection. A user's login and consent are finished programmatically
// (finishInteraction and followAuthorization, which the MCP servers use too).
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
    if (!(await finishInteraction(provider, req, res))) callback(req, res);
  });

  return {
    issuer,
    caPem: ca.pem,
    trust: { caBundle: ca.pem },
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }),
    /** Follows an authorization URL through login and consent; resolves the
     * redirect's `{ code, state, iss }`. */
    async authorize(url) {
      const redirect = await followAuthorization(url, ca.pem);
      if (!redirect.href.startsWith(REDIRECT_URI)) throw new Error(`authorization redirected to ${redirect.origin}${redirect.pathname}`);
      const p = redirect.searchParams;
      if (p.get('error')) throw new Error(`authorization refused: ${p.get('error')} ${p.get('error_description')}`);
      return { code: p.get('code'), state: p.get('state'), iss: p.get('iss') };
    },
    /** RFC 7662 introspection as the `web` client: whether the token is active. */
    async active(token) {
      const res = await request(`${issuer}/token/introspection`, ca.pem, {
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

/** Answers `req` when it is an interaction of `provider` (`/interaction/UID`), and
 * resolves whether it was one. Alice logs in at the first interaction and consents, at
 * the next, to what oidc-provider found missing from her grant: OpenID scopes and
 * claims, and each requested resource's scopes (RFC 8707). Consent is a step of its
 * own because oidc-provider says what is missing only once she has logged in. */
export async function finishInteraction(provider, req, res) {
  if (!/^\/interaction\/[^/?]+$/.test(req.url)) return false;
  try {
    const { prompt, params, grantId } = await provider.interactionDetails(req, res);
    if (prompt.name === 'login') {
      await provider.interactionFinished(req, res, { login: { accountId: 'alice' } }, { mergeWithLastSubmission: false });
      return true;
    }
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: 'alice', clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, scopes.join(' '));
    }
    await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
  } catch (e) {
    res.writeHead(500).end(String(e));
  }
  return true;
}

/** Follows an authorization URL through its redirects on the authorization server
 * (login and consent, cookies kept between the hops), trusting `caPem`; resolves the
 * first redirect that leaves the server's origin: the client's redirect URI with the
 * response (`code`, `state` and `iss`, or `error`). Any other answer rejects with an
 * error carrying its `status` and `body`. */
export async function followAuthorization(url, caPem) {
  const jar = new Map();
  const { origin } = new URL(url);
  let next = url;
  for (let hop = 0; hop < 8; hop += 1) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await request(next, caPem, { headers: cookie ? { cookie } : {} });
    for (const set of [res.headers['set-cookie'] ?? []].flat()) {
      const [pair] = set.split(';');
      const [k, ...v] = pair.split('=');
      jar.set(k.trim(), v.join('='));
    }
    if (res.status < 300 || res.status >= 400) {
      throw Object.assign(new Error(`authorization stopped at ${res.status}: ${res.body.slice(0, 300)}`), { status: res.status, body: res.body });
    }
    const location = new URL(res.headers.location, next);
    if (location.origin !== origin) return location;
    next = location.href;
  }
  throw new Error('too many redirects');
}

/** One HTTPS request trusting `caPem`; resolves `{ status, headers, body }`. */
export function request(url, caPem, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, ca: caPem }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
