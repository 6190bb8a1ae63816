// Conversions between this package's shapes and the WIT shapes jco's bindings take:
// variants as `{ tag, val }`, options as `undefined`, u64 as `BigInt`. Timestamps
// (`types.timestamp`, seconds since the epoch) become `Date`s; u64 counters become
// numbers (exact below 2^53).
import { toDate } from './errors.js';

const opt = (v) => (v === null || v === undefined ? undefined : v);
const num = (v) => (v === undefined || v === null ? null : Number(v));

export function trustSpec(trust = {}) {
  return {
    caBundle: trust.caBundle ?? trust.ca ?? '',
    clientCertificate: opt(trust.clientCertificate),
    clientKey: opt(trust.clientKey),
    webRoots: Boolean(trust.webRoots),
  };
}

export function settings({ capacity, ttlSeconds, policy = 'lru' } = {}) {
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new TypeError('cache capacity must be a whole number of at least 1');
  }
  if (policy !== 'lru' && policy !== 'tiny-lfu') {
    throw new TypeError(`cache policy must be 'lru' or 'tiny-lfu', not ${JSON.stringify(policy)}`);
  }
  return {
    capacity,
    ttlSeconds: ttlSeconds === null || ttlSeconds === undefined ? undefined : BigInt(ttlSeconds),
    policy,
  };
}

function signingKey(key) {
  if (!key || !key.privateKeyPem) {
    throw new TypeError('a signing key needs privateKeyPem (PKCS#8 PEM) and algorithm (rs256 or es256)');
  }
  return { algorithm: key.algorithm ?? 'rs256', privateKeyPem: key.privateKeyPem, keyId: opt(key.keyId) };
}

function clientAuth(auth = { type: 'none' }) {
  switch (auth.type) {
    case 'none':
      return { tag: 'none' };
    case 'client-secret-basic':
    case 'client-secret-post':
      if (typeof auth.secret !== 'string') {
        throw new TypeError(`${auth.type} needs a secret`);
      }
      return { tag: auth.type, val: auth.secret };
    case 'private-key-jwt':
      return { tag: 'private-key-jwt', val: signingKey(auth.key) };
    case 'tls-client-auth':
      return { tag: 'tls-client-auth' };
    default:
      throw new TypeError(`unknown client authentication ${JSON.stringify(auth.type)}: none, client-secret-basic, client-secret-post, private-key-jwt or tls-client-auth`);
  }
}

export function client(c) {
  if (!c || typeof c.clientId !== 'string') {
    throw new TypeError('a client needs a clientId');
  }
  const params = c.authorizationParams ?? [];
  return {
    clientId: c.clientId,
    auth: clientAuth(c.auth),
    issuer: opt(c.issuer),
    tokenEndpoint: opt(c.tokenEndpoint),
    authorizationEndpoint: opt(c.authorizationEndpoint),
    deviceAuthorizationEndpoint: opt(c.deviceAuthorizationEndpoint),
    revocationEndpoint: opt(c.revocationEndpoint),
    redirectUri: opt(c.redirectUri),
    scopes: c.scopes ?? [],
    audience: opt(c.audience),
    resources: c.resources ?? [],
    trust: trustSpec(c.trust),
    timeoutMs: opt(c.timeoutMs),
    refreshSkewSeconds: opt(c.refreshSkewSeconds),
    refreshJitterSeconds: opt(c.refreshJitterSeconds),
    failureHoldOffSeconds: opt(c.failureHoldOffSeconds),
    authorizationParams: Array.isArray(params) ? params.map(([k, v]) => [k, v]) : Object.entries(params),
    dpop: dpopBinding(c.dpop),
  };
}

/** A client's `dpop`: `'per-session'`, `{ key }` (a fixed signing key), or none. */
function dpopBinding(dpop) {
  if (dpop === undefined || dpop === null) {
    return undefined;
  }
  if (dpop === 'per-session') {
    return { tag: 'per-session' };
  }
  if (typeof dpop === 'object' && dpop.key) {
    return { tag: 'fixed', val: signingKey(dpop.key) };
  }
  throw new TypeError(`unknown dpop binding ${JSON.stringify(dpop)}: 'per-session' or { key }`);
}

function tokenExchange(g) {
  return {
    subjectToken: g.subjectToken,
    subjectTokenType: g.subjectTokenType,
    actorToken: opt(g.actorToken),
    actorTokenType: opt(g.actorTokenType),
    requestedTokenType: opt(g.requestedTokenType),
  };
}

const kind = (g) => (typeof g === 'string' ? { type: g } : g ?? {});

/** A grant of `requestToken`: `{ type: 'client-credentials' }` (or the bare string), `{ type:
 * 'password', username, password }`, `{ type: 'authorization-code', code, codeVerifier }`,
 * `{ type: 'refresh-token', refreshToken }`, `{ type: 'token-exchange', subjectToken,
 * subjectTokenType, ... }`, `{ type: 'jwt-bearer', assertion }`, `{ type: 'device-code',
 * deviceCode }`. */
export function grant(input) {
  const g = kind(input);
  switch (g.type) {
    case 'client-credentials':
      return { tag: g.type };
    case 'password':
      return { tag: g.type, val: { username: g.username, password: g.password } };
    case 'authorization-code':
      return { tag: g.type, val: { code: g.code, codeVerifier: opt(g.codeVerifier) } };
    case 'refresh-token':
      return { tag: g.type, val: g.refreshToken };
    case 'token-exchange':
      return { tag: g.type, val: tokenExchange(g) };
    case 'jwt-bearer':
      return { tag: g.type, val: g.assertion };
    case 'device-code':
      return { tag: g.type, val: g.deviceCode };
    default:
      throw new TypeError(`unknown grant ${JSON.stringify(g.type)}`);
  }
}

/** A session grant: as `grant`, without authorization codes and device codes (the
 * session runs those flows: `{ type: 'authorization-code' }`, `{ type: 'device-code' }`),
 * plus `{ type: 'signed-jwt-bearer', signer: { signingKey, issuer, subject, audience,
 * lifetimeSeconds } }`. */
export function sessionGrant(input) {
  const g = kind(input);
  switch (g.type) {
    case 'client-credentials':
    case 'authorization-code':
    case 'device-code':
      return { tag: g.type };
    case 'password':
      return { tag: g.type, val: { username: g.username, password: g.password } };
    case 'token-exchange':
      return { tag: g.type, val: tokenExchange(g) };
    case 'jwt-bearer':
      return { tag: g.type, val: g.assertion };
    case 'signed-jwt-bearer':
      return {
        tag: g.type,
        val: {
          signingKey: signingKey(g.signer.signingKey),
          issuer: g.signer.issuer,
          subject: g.signer.subject,
          audience: opt(g.signer.audience),
          lifetimeSeconds: opt(g.signer.lifetimeSeconds),
        },
      };
    case 'refresh-token':
      return { tag: g.type, val: g.refreshToken };
    default:
      throw new TypeError(`unknown session grant ${JSON.stringify(g.type)}`);
  }
}

/** A response's `WWW-Authenticate` field lines: an array of them, or one line. */
export function headerLines(value = []) {
  const lines = typeof value === 'string' ? [value] : Array.from(value ?? []);
  for (const line of lines) {
    if (typeof line !== 'string') {
      throw new TypeError(`WWW-Authenticate field lines must be strings, not ${typeof line}`);
    }
  }
  return lines;
}

/** A dynamic client registration to make (RFC 7591): `{ issuer, redirectUris, trust,
 * registrationEndpoint, grantTypes, tokenEndpointAuthMethod, clientName, scopes,
 * clientIdMetadataDocument, timeoutMs }`. */
export function registrationRequest(r) {
  if (!r || typeof r.issuer !== 'string') {
    throw new TypeError('a registration request needs an issuer');
  }
  return {
    issuer: r.issuer,
    registrationEndpoint: opt(r.registrationEndpoint),
    redirectUris: r.redirectUris ?? [],
    grantTypes: r.grantTypes ?? [],
    tokenEndpointAuthMethod: opt(r.tokenEndpointAuthMethod),
    clientName: opt(r.clientName),
    scopes: r.scopes ?? [],
    clientIdMetadataDocument: opt(r.clientIdMetadataDocument),
    trust: trustSpec(r.trust),
    timeoutMs: opt(r.timeoutMs),
  };
}

export function resourceAuthorization(r) {
  return {
    resource: r.resource,
    issuer: r.issuer,
    scopes: r.scopes,
    authorizationEndpoint: r.authorizationEndpoint ?? null,
    tokenEndpoint: r.tokenEndpoint ?? null,
    registrationEndpoint: r.registrationEndpoint ?? null,
    pushedAuthorizationRequestEndpoint: r.pushedAuthorizationRequestEndpoint ?? null,
    pushedAuthorizationRequired: r.pushedAuthorizationRequired,
    clientIdMetadataDocumentSupported: r.clientIdMetadataDocumentSupported,
    dpopAlgorithms: r.dpopAlgorithms,
    dpopRequired: r.dpopRequired,
    error: r.error ?? null,
  };
}

export function registration(r) {
  return {
    clientId: r.clientId,
    clientSecret: r.clientSecret ?? null,
    clientSecretExpiresAt: toDate(r.clientSecretExpiresAt),
    tokenEndpointAuthMethod: r.tokenEndpointAuthMethod,
    source: r.source,
  };
}

export function token(t) {
  return {
    accessToken: t.accessToken,
    tokenType: t.tokenType,
    expiresAt: toDate(t.expiresAt),
    scopes: t.scopes,
    refreshToken: t.refreshToken ?? null,
    idToken: t.idToken ?? null,
    issuedTokenType: t.issuedTokenType ?? null,
  };
}

export function profile(p) {
  return { id: p.id, anchors: p.anchors, mutualTls: p.mutualTls, notAfter: toDate(p.notAfter), cached: p.cached };
}

export function stats(s) {
  return {
    hits: num(s.hits),
    misses: num(s.misses),
    evictions: num(s.evictions),
    expirations: num(s.expirations),
    rejected: num(s.rejected),
    size: s.size,
    capacity: s.capacity,
  };
}

export function authorization(a) {
  return { url: a.url, state: a.state, expiresAt: toDate(a.expiresAt) };
}

export function deviceAuthorization(d) {
  return {
    userCode: d.userCode,
    verificationUri: d.verificationUri,
    verificationUriComplete: d.verificationUriComplete ?? null,
    expiresAt: toDate(d.expiresAt),
    intervalSeconds: d.intervalSeconds,
  };
}

export function sessionState(s) {
  if (!s) return null;
  return {
    phase: s.phase,
    expiresAt: toDate(s.expiresAt),
    hasRefreshToken: s.hasRefreshToken,
    retryAt: toDate(s.retryAt),
    failures: s.failures,
    refusals: s.refusals,
    scopes: s.scopes,
    lease: s.lease ? { holder: s.lease.holder, expiresAt: toDate(s.lease.expiresAt) } : null,
  };
}

export function metrics(m) {
  return {
    cache: stats(m.cache),
    handshakesFull: num(m.handshakesFull),
    handshakesResumed: num(m.handshakesResumed),
    tokenRequests: m.tokenRequests.map((r) => ({ grant: r.grant, outcome: r.outcome, count: num(r.count) })),
    tokenRequestDurations: m.tokenRequestDurations.map((h) => ({
      grant: h.grant,
      boundsMs: Array.from(h.boundsMs, num),
      cumulative: Array.from(h.cumulative, num),
      sumMs: num(h.sumMs),
      count: num(h.count),
    })),
    sessions: m.sessions.map((p) => ({ phase: p.phase, sessions: p.sessions })),
    profiles: m.profiles.map((p) => ({ id: p.id, notAfter: toDate(p.notAfter) })),
  };
}
