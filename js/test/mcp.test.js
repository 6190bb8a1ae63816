// Authorizing for a protected resource the way MCP clients do, against oidc-provider
// and an MCP-like resource (support/mcp_servers.js): the resource's 401 challenge,
// discovery from it, dynamic registration, an authorization-code session with the
// resource indicator, pushed authorization requests, and a 403 insufficient_scope step
// up. Tokens are bearer tokens: the servers offer DPoP but do not require it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { ConfigError, GatewayAuth, MemoryStore } from '../src/index.js';
import { startMcpServers } from './support/mcp_servers.js';

/** One GET trusting the servers' CA: the status, the `WWW-Authenticate` field lines
 * (each line as sent) and the parsed body. */
function get(url, caPem, authorization, dpop) {
  const headers = {};
  if (authorization) headers.authorization = authorization;
  if (dpop) headers.dpop = dpop;
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: caPem, headers }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({
        status: res.statusCode,
        challenge: res.headersDistinct['www-authenticate'] ?? [],
        nonce: res.headers['dpop-nonce'] ?? null,
        body: JSON.parse(text),
      }));
    });
    req.on('error', reject);
  });
}

describe('MCP authorization', () => {
  let servers;
  let trust;
  const plugins = [];
  const open = async (options = {}) => {
    const plugin = await GatewayAuth.open({ egress: ['127.0.0.1'], ...options });
    plugins.push(plugin);
    return plugin;
  };

  before(async () => {
    servers = await startMcpServers();
    trust = { caBundle: servers.caPem };
  });
  after(async () => {
    await Promise.all(plugins.map((p) => p.close()));
    await servers?.close();
  });

  /** The resource's challenge, discovered from: the resource authorization. */
  async function discover(auth) {
    const refused = await get(servers.resource, servers.caPem);
    assert.equal(refused.status, 401);
    assert.equal(refused.challenge.length, 1);
    assert.match(refused.challenge[0], /^Bearer resource_metadata="/);
    return auth.discoverResource(servers.resource, refused.challenge, trust);
  }

  /** A session of `registration`'s client for what discovery found; begins its
   * authorization, has Alice log in and consent, completes it: the token. */
  async function authorize(auth, key, found, registration, redirectUri, extra = {}) {
    await auth.openSession(key, {
      clientId: registration.clientId,
      auth: registration.clientSecret === null
        ? { type: 'none' }
        : { type: 'client-secret-basic', secret: registration.clientSecret },
      issuer: found.issuer,
      redirectUri,
      scopes: found.scopes,
      resources: [found.resource],
      trust,
      ...extra,
    }, 'authorization-code');
    const authorization = await auth.beginAuthorization(key);
    const query = new URL(authorization.url).searchParams;
    assert.match(query.get('request_uri') ?? '', /^urn:ietf:params:oauth:request_uri:/, 'the request was pushed (RFC 9126)');
    assert.equal(query.get('code_challenge'), null, 'the parameters travel in the pushed request, not the URL');
    const redirect = await servers.authorize(authorization.url);
    assert.equal(redirect.error, undefined, `authorization refused: ${redirect.error} ${redirect.error_description}`);
    assert.equal(redirect.state, authorization.state);
    return auth.completeAuthorization(key, redirect.state, redirect.code, redirect.iss);
  }

  test('discovery from the resource\'s 401 challenge finds its issuer, scopes, registration and pushed-request endpoints', async () => {
    const auth = await open();
    const found = await discover(auth);
    assert.equal(found.resource, servers.resource);
    assert.equal(found.issuer, servers.issuer);
    assert.deepEqual(found.scopes, ['mcp:read'], 'the challenge\'s scope, not every scope the resource supports');
    assert.equal(found.registrationEndpoint, `${servers.issuer}/reg`);
    assert.equal(found.pushedAuthorizationRequestEndpoint, `${servers.issuer}/request`);
    assert.equal(found.pushedAuthorizationRequired, false);
    assert.equal(found.dpopRequired, false);
    assert.equal(found.error, null, 'a request without credentials gets no error code');
  });

  test('a public client registered once for two gateways sharing a store authorizes through a pushed request and calls the resource', async () => {
    const store = new MemoryStore();
    const first = await open({ store });
    const second = await open({ store });
    const found = await discover(first);
    const redirectUri = 'https://gateway.example/public/callback';
    const request = { issuer: found.issuer, redirectUris: [redirectUri], clientName: 'gateway (public)', trust };
    const before = servers.registrations();
    const registered = await first.registerClient(request);
    assert.equal(registered.source, 'registered');
    assert.equal(registered.tokenEndpointAuthMethod, 'none');
    assert.equal(registered.clientSecret, null);
    const reused = await second.registerClient(request);
    assert.equal(reused.source, 'stored');
    assert.equal(reused.clientId, registered.clientId);
    assert.equal(servers.registrations() - before, 1, 'one registration at the server');

    const token = await authorize(first, 'mcp-public', found, registered, redirectUri);
    assert.deepEqual(token.scopes, ['mcp:read']);
    const answer = await get(servers.resource, servers.caPem, `${token.tokenType} ${token.accessToken}`);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.aud, servers.resource, 'the token is for the resource (RFC 8707)');
    assert.equal(answer.body.dpop, false);
  });

  test('a confidential client (client_secret_basic) steps up on a 403 insufficient_scope and keeps its token until the step up completes', async () => {
    const auth = await open();
    const found = await discover(auth);
    const redirectUri = 'https://gateway.example/confidential/callback';
    const registration = await auth.registerClient({
      issuer: found.issuer, redirectUris: [redirectUri], tokenEndpointAuthMethod: 'client_secret_basic', trust,
    });
    assert.equal(registration.tokenEndpointAuthMethod, 'client_secret_basic');
    assert.equal(typeof registration.clientSecret, 'string');

    const token = await authorize(auth, 'mcp-confidential', found, registration, redirectUri);
    const bearer = `${token.tokenType} ${token.accessToken}`;
    assert.equal((await get(servers.resource, servers.caPem, bearer)).status, 200);
    const admin = `${servers.resourceOrigin}/mcp/admin`;
    const refused = await get(admin, servers.caPem, bearer);
    assert.equal(refused.status, 403);

    const stepUp = await auth.beginStepUp('mcp-confidential', refused.challenge);
    assert.ok(new URL(stepUp.url).searchParams.get('request_uri'), 'the step up is pushed too');
    assert.equal((await auth.accessToken('mcp-confidential')).accessToken, token.accessToken, 'served until the step up completes');
    const redirect = await servers.authorize(stepUp.url);
    const stronger = await auth.completeAuthorization('mcp-confidential', redirect.state, redirect.code, redirect.iss);
    assert.deepEqual([...stronger.scopes].sort(), ['mcp:read', 'mcp:write']);
    assert.equal((await get(admin, servers.caPem, `${stronger.tokenType} ${stronger.accessToken}`)).status, 200);
  });

  test('a DPoP-bound session signs with its own key and the resource takes its proofs after one nonce round', async () => {
    const auth = await open();
    const found = await discover(auth);
    const redirectUri = 'https://gateway.example/dpop/callback';
    const registration = await auth.registerClient({ issuer: found.issuer, redirectUris: [redirectUri], trust });
    const token = await authorize(auth, 'mcp-dpop', found, registration, redirectUri, { dpop: 'per-session' });
    assert.equal(token.tokenType, 'DPoP');
    const bound = `DPoP ${token.accessToken}`;
    assert.equal((await get(servers.resource, servers.caPem, `Bearer ${token.accessToken}`)).status, 401, 'not usable as a bearer token');
    let proof = await auth.dpopProof('mcp-dpop', 'GET', servers.resource);
    const asked = await get(servers.resource, servers.caPem, bound, proof);
    assert.equal(asked.status, 401);
    assert.ok(asked.challenge.some((line) => line.includes('error="use_dpop_nonce"')), String(asked.challenge));
    proof = await auth.dpopProof('mcp-dpop', 'GET', servers.resource, asked.nonce);
    const answer = await get(servers.resource, servers.caPem, bound, proof);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.dpop, true);
    assert.equal(answer.body.aud, servers.resource);
  });

  test('a step up from a challenge that is not insufficient_scope is refused as configuration', async () => {
    const auth = await open();
    await auth.openSession('mcp-step', {
      clientId: 'unused', auth: { type: 'none' }, issuer: servers.issuer, redirectUri: 'https://gateway.example/cb', trust,
    }, 'authorization-code');
    const refused = await get(servers.resource, servers.caPem, 'Bearer not-a-token');
    assert.equal(refused.status, 401);
    const error = await auth.beginStepUp('mcp-step', refused.challenge).then(() => null, (e) => e);
    assert.ok(error instanceof ConfigError, String(error));
  });
});
