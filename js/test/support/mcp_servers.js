// The servers the end-to-end tests of MCP-style authorization run against, on 127.0.0.1
// over HTTPS with one test CA:
//
// - oidc-provider as the authorization server: open dynamic client registration
//   (RFC 7591), resource indicators (RFC 8707) with JWT access tokens whose `aud` is the
//   resource, DPoP (RFC 9449) with nonces required, pushed authorization requests
//   (RFC 9126, optional until `require-par on`), PKCE S256 required, refresh tokens
//   rotated on every use, revocation, and client ID metadata documents (draft-02,
//   experimental in oidc-provider) served by the third server below. Alice's login and
//   consent are finished programmatically (./oidc.js).
// - a protected resource, an MCP-like server at /mcp (/mcp/admin needs mcp:write too):
//   RFC 9728 metadata, Bearer and DPoP challenges, tokens checked for signature,
//   audience, expiry and, when DPoP-bound, a proof of possession with a nonce round.
// - a client's web origin, serving the client ID metadata documents a test publishes
//   (`client-document`) at /clients/NAME.
//
// Run as a program (`node test/support/mcp_servers.js`), it prints one line of JSON
// describing the servers, then answers one line of JSON to each command read from
// stdin (see COMMANDS). Logging goes to stderr only, and never carries a token.
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import https from 'node:https';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import Provider, { errors } from 'oidc-provider';
import { Agent, fetch as undiciFetch } from 'undici';
// oidc-provider's memory adapter, imported from inside the package (it has no export
// map): one store for the two providers below.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';
import { makeCa } from './certs.js';
import { finishInteraction, followAuthorization } from './oidc.js';

/** The scopes the resource offers; `mcp:read` is enough for /mcp. */
export const RESOURCE_SCOPES = ['mcp:read', 'mcp:write'];
/** The DPoP proof algorithms both servers accept. */
export const DPOP_ALGS = ['ES256', 'RS256'];
// How far a DPoP proof's iat may be from now (RFC 9449 §11.1 leaves it to the server).
const PROOF_WINDOW_SECONDS = 60;

const COMMANDS = {
  authorize: 'authorize URL: follows the authorization URL through login and consent',
  registrations: 'registrations: how many clients registered dynamically',
  requests: 'requests: requests seen per path, by the provider, the resource and the client origin',
  'require-par': 'require-par on|off: whether authorization requests must be pushed',
  'access-token-ttl': 'access-token-ttl SECONDS: the lifetime of access tokens issued from now on',
  'client-document': 'client-document NAME JSON: publishes client metadata at /clients/NAME of the client origin',
  quit: 'quit: stops the servers and exits',
};

/** Starts the three servers; resolves what a test needs of them. */
export async function startMcpServers() {
  const ca = await makeCa('MCP servers test CA');
  const leaf = await ca.issue({ cn: '127.0.0.1', dns: ['localhost'], ips: ['127.0.0.1'] });
  const listen = async () => {
    const server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    return server;
  };
  const asServer = await listen();
  const rsServer = await listen();
  const clientServer = await listen();
  const issuer = `https://127.0.0.1:${asServer.address().port}`;
  const resourceOrigin = `https://127.0.0.1:${rsServer.address().port}`;
  const resource = `${resourceOrigin}/mcp`;
  const resourceMetadata = `${resourceOrigin}/.well-known/oauth-protected-resource/mcp`;
  const clientOrigin = `https://127.0.0.1:${clientServer.address().port}`;
  const clientDocuments = new Map();
  // oidc-provider fetches client ID metadata documents through a dispatcher that
  // refuses special-use addresses (127.0.0.1 among them) and trusts the public roots
  // only: these documents come from the client origin, trusting the test CA.
  const trustingTestCa = new Agent({ connect: { ca: ca.pem } });

  const state = {
    requirePar: false,
    accessTokenTtl: 300,
    registrations: 0,
    requests: { provider: new Map(), resource: new Map(), client: new Map() },
  };

  // Two providers of one issuer, alike but for whether PAR is required: oidc-provider
  // decides that when it is constructed, so `require-par` switches which one answers.
  // They share signing keys, cookie keys, the DPoP nonce secret and one store, so the
  // clients, sessions, grants, pushed requests and codes of one are the other's. (A
  // client registered while PAR is required keeps `require_pushed_authorization_requests`
  // in its metadata.)
  const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = 'mcp-servers-1';
  const shared = {
    jwks: { keys: [{ ...signingKey.privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    nonceSecret: randomBytes(32),
    adapter: createMemoryAdapter(),
  };
  const makeProvider = (requirePushedAuthorizationRequests) => {
    const provider = new Provider(issuer, {
      adapter: shared.adapter,
      jwks: shared.jwks,
      cookies: shared.cookies,
      scopes: ['openid', 'offline_access'],
      features: {
        devInteractions: { enabled: false },
        // Open registration (RFC 7591 §3): no initial access token.
        registration: { enabled: true },
        resourceIndicators: {
          enabled: true,
          getResourceServerInfo: async (_ctx, indicator) => {
            if (indicator !== resource) throw new errors.InvalidTarget();
            return {
              scope: RESOURCE_SCOPES.join(' '),
              audience: resource,
              accessTokenFormat: 'jwt',
              accessTokenTTL: state.accessTokenTtl,
              jwt: { sign: { alg: 'RS256' } },
            };
          },
        },
        // Every DPoP proof needs a nonce of the server's (RFC 9449 §8): clients must do
        // the use_dpop_nonce round.
        dPoP: { enabled: true, nonceSecret: shared.nonceSecret, requireNonce: () => true },
        pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests },
        revocation: { enabled: true },
        // oidc-provider keeps a fetched document at least 30 s (its cacheDuration.min).
        clientIdMetadataDocument: {
          enabled: true,
          ack: 'draft-02',
          allowFetch: async (_ctx, id) => id.startsWith(`${clientOrigin}/clients/`),
        },
      },
      fetch: (url, options) => undiciFetch(url, { ...options, dispatcher: trustingTestCa }),
      enabledJWA: { dPoPSigningAlgValues: DPOP_ALGS },
      pkce: { required: () => true },
      issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
      rotateRefreshToken: () => true,
      findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      // Lifetimes set, so oidc-provider does not note on each use that they are defaults.
      ttl: {
        AccessToken: () => state.accessTokenTtl,
        AuthorizationCode: 60,
        Grant: 3600,
        IdToken: 3600,
        Interaction: 600,
        RefreshToken: 86400,
        Session: 3600,
      },
      // Errors shown to the user agent (those not redirected to the client) as JSON, so
      // `authorize` can answer them.
      renderError: async (ctx, out) => {
        ctx.type = 'json';
        ctx.body = out;
      },
    });
    provider.proxy = false;
    provider.on('registration_create.success', () => { state.registrations += 1; });
    provider.on('server_error', (_ctx, e) => console.error(`oidc-provider server error: ${e.message}`));
    return { provider, callback: provider.callback() };
  };
  const optional = makeProvider(false);
  const required = makeProvider(true);

  asServer.on('request', async (req, res) => {
    count(state.requests.provider, req.url);
    const { provider, callback } = state.requirePar ? required : optional;
    if (!(await finishInteraction(provider, req, res))) callback(req, res);
  });

  const protectedResource = new ProtectedResource({
    issuer, resource, resourceOrigin, resourceMetadata, publicKeys: new Map([[kid, signingKey.publicKey]]),
  });
  rsServer.on('request', (req, res) => {
    count(state.requests.resource, req.url);
    protectedResource.serve(req, res);
  });
  clientServer.on('request', (req, res) => {
    count(state.requests.client, req.url);
    const document = clientDocuments.get(new URL(req.url, clientOrigin).pathname);
    if (req.method === 'GET' && document) json(res, 200, document);
    else json(res, 404, { error: 'not_found' });
  });

  return {
    issuer,
    resource,
    resourceOrigin,
    resourceMetadata,
    caPem: ca.pem,
    /** What the program prints on start. */
    description() {
      return {
        issuer,
        resource,
        resourceOrigin,
        resourceMetadata,
        clientOrigin,
        caPem: ca.pem,
        authorizationEndpoint: `${issuer}/auth`,
        tokenEndpoint: `${issuer}/token`,
        registrationEndpoint: `${issuer}/reg`,
        pushedAuthorizationRequestEndpoint: `${issuer}/request`,
        revocationEndpoint: `${issuer}/token/revocation`,
        jwksUri: `${issuer}/jwks`,
        scopes: RESOURCE_SCOPES,
        commands: Object.values(COMMANDS),
      };
    },
    /** Follows an authorization URL through login and consent; resolves the response
     * the client's redirect URI got: `{ code, state, iss }` or `{ error,
     * error_description }`. */
    async authorize(url) {
      let redirect;
      try {
        redirect = await followAuthorization(url, ca.pem);
      } catch (e) {
        const shown = JSON.parse(e.body ?? 'null');
        if (typeof shown?.error !== 'string') throw e;
        return { error: shown.error, error_description: shown.error_description };
      }
      const p = redirect.searchParams;
      if (p.has('error')) return { error: p.get('error'), error_description: p.get('error_description') };
      return { code: p.get('code'), state: p.get('state'), iss: p.get('iss') };
    },
    registrations: () => state.registrations,
    /** Requests seen so far, per path (interaction and resume paths without their
     * id), by the authorization server, the resource and the client origin. */
    requests: () => ({
      provider: Object.fromEntries(state.requests.provider),
      resource: Object.fromEntries(state.requests.resource),
      client: Object.fromEntries(state.requests.client),
    }),
    /** Serves `metadata` as the client ID metadata document `/clients/NAME` of the
     * client origin, its `client_id` that URL; returns the URL. */
    publishClientDocument(name, metadata) {
      const clientId = `${clientOrigin}/clients/${name}`;
      clientDocuments.set(new URL(clientId).pathname, { ...metadata, client_id: clientId });
      return clientId;
    },
    /** Whether authorization requests must be pushed (RFC 9126 §5), from now on. */
    requirePar(on) { state.requirePar = on; },
    /** The lifetime of access tokens issued from now on. */
    setAccessTokenTtl(seconds) { state.accessTokenTtl = seconds; },
    close: () => Promise.all([asServer, rsServer, clientServer].map((server) => new Promise((r) => {
      server.closeAllConnections?.();
      server.close(r);
    }))),
  };
}

function count(counts, url) {
  const path = new URL(url, 'https://127.0.0.1').pathname.replace(/^\/(interaction|auth)\/[^/]+$/, '/$1/:uid');
  counts.set(path, (counts.get(path) ?? 0) + 1);
}

/** Why a token or a proof was refused; its message goes into error_description. */
class Refused extends Error {}

/** The MCP-like resource: /mcp needs mcp:read, /mcp/admin mcp:read and mcp:write. */
class ProtectedResource {
  #config;
  // The nonce each DPoP-bound token must carry in its proofs, by the token's SHA-256:
  // issued the first time the token comes (RFC 9449 §9).
  #nonces = new Map();
  // The jti of proofs seen, with their iat, for replay detection (RFC 9449 §11.1).
  #seen = new Map();

  constructor(config) {
    this.#config = config;
  }

  serve(req, res) {
    const { pathname } = new URL(req.url, this.#config.resourceOrigin);
    if (pathname === '/.well-known/oauth-protected-resource/mcp' && req.method === 'GET') {
      json(res, 200, {
        resource: this.#config.resource,
        authorization_servers: [this.#config.issuer],
        scopes_supported: RESOURCE_SCOPES,
        bearer_methods_supported: ['header'],
        dpop_signing_alg_values_supported: DPOP_ALGS,
        resource_name: 'MCP test server',
      });
    } else if (pathname === '/mcp' || pathname === '/mcp/admin') {
      const needed = pathname === '/mcp' ? ['mcp:read'] : RESOURCE_SCOPES;
      this.#protect(req, res, `${this.#config.resourceOrigin}${pathname}`, needed);
    } else {
      json(res, 404, { error: 'not_found' });
    }
  }

  #protect(req, res, htu, needed) {
    const metadata = `resource_metadata="${this.#config.resourceMetadata}"`;
    const scope = `scope="${needed.join(' ')}"`;
    const [scheme, token, ...rest] = (req.headers.authorization ?? '').split(' ');
    if (!scheme) {
      // RFC 6750 §3.1: no error code when the request had no credentials.
      json(res, 401, { error: 'unauthorized' }, { 'www-authenticate': `Bearer ${metadata}, ${scope}` });
      return;
    }
    const dpop = scheme.toLowerCase() === 'dpop';
    const challenge = (error, description, more = '') => `${dpop ? 'DPoP' : 'Bearer'} error="${error}", error_description="${description}"${more}`;
    const refuse = (status, error, description, headers = {}) => json(res, status, { error, error_description: description }, {
      'www-authenticate': challenge(error, description, `, ${metadata}`), ...headers,
    });
    if (!token || rest.length || !(dpop || scheme.toLowerCase() === 'bearer')) {
      refuse(400, 'invalid_request', 'the Authorization header is not Bearer or DPoP with a token');
      return;
    }
    let claims;
    try {
      claims = this.#verifyToken(token);
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      refuse(401, 'invalid_token', e.message);
      return;
    }
    const jkt = claims.cnf?.jkt;
    if (jkt && !dpop) {
      // RFC 9449 §7.2: a DPoP-bound token is no bearer token.
      json(res, 401, { error: 'invalid_token' }, {
        'www-authenticate': `DPoP error="invalid_token", error_description="the token is DPoP-bound: send it with the DPoP scheme and a proof", algs="${DPOP_ALGS.join(' ')}"`,
      });
      return;
    }
    if (!jkt && dpop) {
      refuse(401, 'invalid_token', 'the token is not DPoP-bound');
      return;
    }
    if (jkt) {
      const tokenHash = createHash('sha256').update(token).digest('base64url');
      let proof;
      try {
        proof = this.#verifyProof(req.headers.dpop, { htm: req.method, htu, ath: tokenHash, jkt });
      } catch (e) {
        if (!(e instanceof Refused)) throw e;
        refuse(401, 'invalid_dpop_proof', e.message);
        return;
      }
      let nonce = this.#nonces.get(tokenHash);
      if (!nonce) {
        nonce = randomBytes(16).toString('base64url');
        this.#nonces.set(tokenHash, nonce);
      }
      if (proof.nonce !== nonce) {
        json(res, 401, { error: 'use_dpop_nonce' }, {
          'www-authenticate': 'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"',
          'dpop-nonce': nonce,
        });
        return;
      }
    }
    const granted = new Set(String(claims.scope ?? '').split(' '));
    if (!needed.every((s) => granted.has(s))) {
      const description = `this needs ${needed.join(' ')}`;
      json(res, 403, { error: 'insufficient_scope', error_description: description }, {
        'www-authenticate': `${dpop ? 'DPoP' : 'Bearer'} error="insufficient_scope", ${scope}, ${metadata}`,
      });
      return;
    }
    json(res, 200, {
      ok: true, sub: claims.sub, scope: claims.scope, aud: claims.aud, dpop: Boolean(jkt),
    });
  }

  /** The claims of an access token the authorization server signed for this resource
   * (RFC 9068: `at+jwt`, signed with a key of its JWKS, `iss`, `aud`, `exp`). */
  #verifyToken(token) {
    const { header, payload, input, signature } = decodeJws(token, 'the token');
    if (header.typ !== 'at+jwt') throw new Refused('the token is not an at+jwt');
    const key = this.#config.publicKeys.get(header.kid);
    if (!key || header.alg !== 'RS256') throw new Refused('the token is not signed by the authorization server');
    if (!verifySignature(header.alg, key, input, signature)) throw new Refused('the token signature does not verify');
    if (payload.iss !== this.#config.issuer) throw new Refused('the token is from another issuer');
    const aud = [payload.aud].flat();
    if (!aud.includes(this.#config.resource)) throw new Refused('the token is for another audience');
    if (!(typeof payload.exp === 'number' && payload.exp > Date.now() / 1000)) throw new Refused('the token expired');
    return payload;
  }

  /** The payload of the DPoP proof `header` for this request (RFC 9449 §4.3), once its
   * signature, type, method, URL, time, uniqueness, `ath` and key thumbprint check. */
  #verifyProof(value, { htm, htu, ath, jkt }) {
    // Node joins repeated unknown header fields with ", ": one proof has no comma.
    if (typeof value !== 'string' || !value || value.includes(',')) throw new Refused('one DPoP proof is needed');
    const { header, payload, input, signature } = decodeJws(value, 'the DPoP proof');
    if (header.typ !== 'dpop+jwt') throw new Refused('the DPoP proof is not a dpop+jwt');
    if (!DPOP_ALGS.includes(header.alg)) throw new Refused(`the DPoP proof algorithm is not one of ${DPOP_ALGS.join(' ')}`);
    const { jwk } = header;
    if (!jwk || typeof jwk !== 'object' || 'd' in jwk) throw new Refused('the DPoP proof has no public jwk');
    let key;
    try {
      key = createPublicKey({ key: jwk, format: 'jwk' });
    } catch {
      throw new Refused('the DPoP proof jwk is not a key');
    }
    if (!verifySignature(header.alg, key, input, signature)) throw new Refused('the DPoP proof signature does not verify');
    if (payload.htm !== htm) throw new Refused('the DPoP proof htm is not the method');
    const url = URL.parse(String(payload.htu));
    if (url) {
      url.search = '';
      url.hash = '';
    }
    if (url?.href !== htu) throw new Refused('the DPoP proof htu is not the URL');
    const now = Date.now() / 1000;
    if (typeof payload.iat !== 'number' || Math.abs(now - payload.iat) > PROOF_WINDOW_SECONDS) {
      throw new Refused('the DPoP proof iat is not recent');
    }
    if (typeof payload.jti !== 'string' || !payload.jti) throw new Refused('the DPoP proof has no jti');
    for (const [jti, iat] of this.#seen) {
      if (now - iat > 2 * PROOF_WINDOW_SECONDS) this.#seen.delete(jti);
    }
    if (this.#seen.has(payload.jti)) throw new Refused('the DPoP proof was used before');
    this.#seen.set(payload.jti, payload.iat);
    if (payload.ath !== ath) throw new Refused('the DPoP proof ath is not the hash of the token');
    if (thumbprint(jwk) !== jkt) throw new Refused('the DPoP proof key is not the one the token is bound to');
    return payload;
  }
}

function decodeJws(value, what) {
  const parts = value.split('.');
  if (parts.length !== 3) throw new Refused(`${what} is not a JWS`);
  try {
    const [header, payload] = parts.slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url')));
    if (!header || typeof header !== 'object' || !payload || typeof payload !== 'object') throw new Error();
    return { header, payload, input: `${parts[0]}.${parts[1]}`, signature: Buffer.from(parts[2], 'base64url') };
  } catch {
    throw new Refused(`${what} is not a JWS`);
  }
}

function verifySignature(alg, key, input, signature) {
  if (alg === 'ES256') {
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails.namedCurve !== 'prime256v1') return false;
    // JWS carries ECDSA signatures as r || s (RFC 7518 §3.4), not DER.
    return verify('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }, signature);
  }
  if (alg === 'RS256') {
    return key.asymmetricKeyType === 'rsa' && verify('sha256', Buffer.from(input), key, signature);
  }
  return false;
}

/** The JWK thumbprint of RFC 7638: SHA-256 of the required members in order. */
function thumbprint(jwk) {
  const members = {
    EC: ({ crv, kty, x, y }) => ({ crv, kty, x, y }),
    RSA: ({ e, kty, n }) => ({ e, kty, n }),
  }[jwk.kty];
  if (!members) return undefined;
  return createHash('sha256').update(JSON.stringify(members(jwk))).digest('base64url');
}

function json(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

/** One command line's answer. */
async function answer(servers, line) {
  const [name, ...args] = line.trim().split(/\s+/);
  switch (name) {
    case 'authorize':
      if (args.length !== 1) return { error: 'usage: authorize URL' };
      try {
        return await servers.authorize(args[0]);
      } catch (e) {
        return { error: e.message };
      }
    case 'registrations':
      return { registrations: servers.registrations() };
    case 'requests':
      return servers.requests();
    case 'require-par':
      if (!['on', 'off'].includes(args[0]) || args.length !== 1) return { error: 'usage: require-par on|off' };
      servers.requirePar(args[0] === 'on');
      return { requirePar: args[0] === 'on' };
    case 'access-token-ttl': {
      const seconds = Number(args[0]);
      if (!Number.isSafeInteger(seconds) || seconds <= 0 || args.length !== 1) return { error: 'usage: access-token-ttl SECONDS' };
      servers.setAccessTokenTtl(seconds);
      return { accessTokenTtl: seconds };
    }
    case 'client-document': {
      const [, docName, text] = line.trim().match(/^\S+\s+(\S+)\s+(.+)$/s) ?? [];
      let metadata;
      try {
        metadata = JSON.parse(text);
      } catch {
        metadata = undefined;
      }
      if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(docName ?? '') || !metadata || typeof metadata !== 'object' || Array.isArray(metadata)) {
        return { error: 'usage: client-document NAME JSON-OBJECT' };
      }
      return { clientId: servers.publishClientDocument(docName, metadata) };
    }
    case 'quit':
      return { ok: true };
    default:
      return { error: `unknown command ${JSON.stringify(name ?? '')}: one of ${Object.keys(COMMANDS).join(', ')}` };
  }
}

async function main() {
  // oidc-provider writes its notices with console.info: stdout carries answers only.
  console.log = console.error;
  console.info = console.error;
  console.debug = console.error;
  const servers = await startMcpServers();
  const write = (value) => new Promise((r) => { process.stdout.write(`${JSON.stringify(value)}\n`, r); });
  await write(servers.description());
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    await write(await answer(servers, line));
    if (line.trim() === 'quit') break;
  }
  // After quit, or when stdin closes because the parent went away.
  await servers.close();
  process.exit(0);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e) => {
    console.error(`mcp_servers: ${e.stack ?? e}`);
    process.exit(1);
  });
}
