// Every grant and client-authentication method against the development server,
// through the JavaScript host (OAuth instance in a worker, sockets on this thread).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import {
  AuthorizationRequiredError, ConfigError, GatewayAuth, OAuthError, ProtocolError, TlsError,
  TransportError,
} from '../src/index.js';
import {
  JWT_BEARER_ISSUER, JWT_ES256_CLIENT_ID, JWT_RS256_CLIENT_ID, MTLS_CLIENT_ID, PASSWORD,
  POST_CLIENT_ID, POST_CLIENT_SECRET, PUBLIC_CLIENT_ID, USERNAME, startDevServer,
} from './support/devserver.js';
import { makeCa } from './support/certs.js';

const password = { type: 'password', username: USERNAME, password: PASSWORD };

describe('OAuth flows against the development server', () => {
  let server;
  let auth;
  before(async () => {
    server = await startDevServer();
    auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
  });
  after(async () => {
    await auth?.close();
    server?.stop();
  });

  test('client credentials with client_secret_basic obtain a bearer token with the scopes asked', async () => {
    const token = await auth.requestToken(server.client({ scopes: ['read', 'write'] }), { type: 'client-credentials' });
    assert.equal(token.tokenType, 'Bearer');
    assert.deepEqual(token.scopes, ['read', 'write']);
    assert.ok(token.expiresAt instanceof Date);
    assert.ok(token.expiresAt.getTime() > Date.now() + 3000_000, 'expires in about an hour');
    assert.match(token.accessToken, /\S{16,}/);
  });

  test('client_secret_post sends the secret in the body', async () => {
    const client = server.client({ clientId: POST_CLIENT_ID, auth: { type: 'client-secret-post', secret: POST_CLIENT_SECRET } });
    const token = await auth.requestToken(client, 'client-credentials');
    assert.equal(token.tokenType, 'Bearer');
  });

  test('a wrong secret is a protocol error invalid_client with the status and no secret in the message', async () => {
    const client = server.client({ auth: { type: 'client-secret-basic', secret: 'wrong-secret-value' } });
    const error = await auth.requestToken(client, 'client-credentials').then(() => null, (e) => e);
    assert.ok(error instanceof ProtocolError, String(error));
    assert.ok(error instanceof OAuthError);
    assert.equal(error.code, 'protocol');
    assert.equal(error.status, 401);
    assert.equal(error.error, 'invalid_client');
    assert.ok(!error.message.includes('wrong-secret-value'));
  });

  test('private_key_jwt signs a fresh assertion per request with RS256 and ES256', async () => {
    for (const [clientId, algorithm, keyPem] of [
      [JWT_RS256_CLIENT_ID, 'rs256', server.rs256KeyPem],
      [JWT_ES256_CLIENT_ID, 'es256', server.es256KeyPem],
    ]) {
      const client = server.client({ clientId, auth: { type: 'private-key-jwt', key: { algorithm, privateKeyPem: keyPem, keyId: 'k1' } } });
      await auth.requestToken(client, 'client-credentials');
      // The server refuses a replayed jti: a second request needs a fresh assertion.
      await auth.requestToken(client, 'client-credentials');
    }
  });

  test('tls_client_auth presents the client certificate of the trust material, and without one nothing is sent', async () => {
    const client = server.client({
      clientId: MTLS_CLIENT_ID,
      auth: { type: 'tls-client-auth' },
      trust: { caBundle: server.caPem, clientCertificate: server.mtlsCertPem, clientKey: server.mtlsKeyPem },
    });
    await auth.requestToken(client, 'client-credentials');
    const before = await server.count('token-requests');
    const error = await auth.requestToken({ ...client, trust: { caBundle: server.caPem } }, 'client-credentials').then(() => null, (e) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(error.message, /client_certificate/);
    assert.equal(await server.count('token-requests'), before, 'refused before any request');
  });

  test('the password grant then a refresh rotates the refresh token, and the old one is refused', async () => {
    const client = server.client();
    const first = await auth.requestToken(client, password);
    assert.ok(first.refreshToken);
    const second = await auth.requestToken(client, { type: 'refresh-token', refreshToken: first.refreshToken });
    assert.ok(second.refreshToken);
    assert.notEqual(second.refreshToken, first.refreshToken);
    const reused = await auth.requestToken(client, { type: 'refresh-token', refreshToken: first.refreshToken }).then(() => null, (e) => e);
    assert.ok(reused instanceof ProtocolError, String(reused));
    assert.equal(reused.error, 'invalid_grant');
  });

  test('token exchange and jwt-bearer grants obtain tokens', async () => {
    const client = server.client();
    const subject = await auth.requestToken(server.client({ scopes: ['read'] }), 'client-credentials');
    const exchanged = await auth.requestToken(client, {
      type: 'token-exchange',
      subjectToken: subject.accessToken,
      subjectTokenType: 'urn:ietf:params:oauth:token-type:access_token',
    });
    assert.equal(exchanged.issuedTokenType, 'urn:ietf:params:oauth:token-type:access_token');
    const assertion = await server.command(`assertion ${USERNAME}`);
    const bearer = await auth.requestToken(client, { type: 'jwt-bearer', assertion });
    assert.equal(bearer.tokenType, 'Bearer');
  });

  test('a jwt-bearer session signs a fresh assertion for every token request', async () => {
    await auth.openSession('service-account', server.client(), {
      type: 'signed-jwt-bearer',
      signer: {
        signingKey: { algorithm: 'es256', privateKeyPem: server.jwtBearerIssuerKeyPem },
        issuer: JWT_BEARER_ISSUER,
        subject: USERNAME,
      },
    });
    const token = await auth.accessToken('service-account');
    assert.equal((await auth.sessionStatus('service-account')).phase, 'valid');
    assert.equal((await auth.accessToken('service-account')).accessToken, token.accessToken, 'served from the session');
  });

  test('an authorization-code session with PKCE completes once, with a single-use state', async () => {
    const client = server.client({ clientId: PUBLIC_CLIENT_ID, auth: { type: 'none' }, scopes: ['read'], issuer: server.issuer });
    await auth.openSession('user-1', client, 'authorization-code');
    const authorization = await auth.beginAuthorization('user-1');
    assert.match(authorization.url, /code_challenge_method=S256/);
    assert.ok(authorization.expiresAt instanceof Date);
    assert.equal((await auth.sessionStatus('user-1')).phase, 'authorizing');
    const { code, state, iss } = await server.authorize(authorization.url);
    assert.equal(state, authorization.state);
    await assert.rejects(auth.completeAuthorization('user-1', 'not-the-state', code, iss), OAuthError);
    const token = await auth.completeAuthorization('user-1', state, code, iss);
    assert.equal(token.refreshToken, null, 'sessions keep their refresh token');
    assert.equal((await auth.accessToken('user-1')).accessToken, token.accessToken);
    await assert.rejects(auth.completeAuthorization('user-1', state, code, iss), OAuthError, 'the state is single use');
    const status = await auth.sessionStatus('user-1');
    assert.equal(status.phase, 'valid');
    assert.equal(status.hasRefreshToken, true);
  });

  test('a token an upstream rejected is renewed by refresh once, and asked again returns the new one', async () => {
    const rejected = await auth.accessToken('user-1');
    const renewed = await auth.renewToken('user-1', rejected);
    assert.notEqual(renewed.accessToken, rejected.accessToken);
    const again = await auth.renewToken('user-1', rejected.accessToken);
    assert.equal(again.accessToken, renewed.accessToken, 'no second renewal');
    assert.equal((await auth.accessToken('user-1')).accessToken, renewed.accessToken);
  });

  test('a device authorization polls until the user approves, then serves the token', { timeout: 30000 }, async () => {
    const client = server.client({ clientId: PUBLIC_CLIENT_ID, auth: { type: 'none' } });
    await auth.openSession('tv', client, 'device-code');
    const device = await auth.beginDeviceAuthorization('tv');
    assert.ok(device.verificationUri.startsWith(server.issuer));
    assert.equal(await auth.pollDeviceAuthorization('tv'), null, 'pending until approved');
    assert.equal(await server.command(`approve ${device.userCode}`), 'true');
    await new Promise((r) => setTimeout(r, device.intervalSeconds * 1000 + 200));
    const token = await auth.pollDeviceAuthorization('tv');
    assert.ok(token, 'a token after approval');
    assert.equal((await auth.accessToken('tv')).accessToken, token.accessToken);
  });

  test('endpoints are discovered from the issuer alone', async () => {
    const client = { clientId: 'basic-client', auth: server.client().auth, issuer: server.issuer, trust: server.trust };
    const token = await auth.requestToken(client, 'client-credentials');
    assert.equal(token.tokenType, 'Bearer');
  });

  test('revoke ends a password session: its tokens are forgotten and it must be authorized again', async () => {
    await auth.openSession('revoked', server.client(), password);
    await auth.accessToken('revoked');
    await auth.revoke('revoked');
    const status = await auth.sessionStatus('revoked');
    assert.equal(status?.hasRefreshToken ?? false, false);
  });

  test('a refresh-token session renews with the token it was given; a refused one needs authorization again', async () => {
    const first = await auth.requestToken(server.client(), password);
    await auth.openSession('from-refresh', server.client(), { type: 'refresh-token', refreshToken: first.refreshToken });
    const token = await auth.accessToken('from-refresh');
    assert.ok(token.accessToken);
    await auth.openSession('spent', server.client(), { type: 'refresh-token', refreshToken: first.refreshToken });
    await assert.rejects(auth.accessToken('spent'), AuthorizationRequiredError);
  });

  test('a session serves its cached token without another request', async () => {
    await auth.openSession('cached', server.client(), 'client-credentials');
    const first = await auth.accessToken('cached');
    const before = await server.count('token-requests');
    for (let i = 0; i < 20; i += 1) {
      assert.equal((await auth.accessToken('cached')).accessToken, first.accessToken);
    }
    assert.equal(await server.count('token-requests'), before);
  });
});

describe('trust, egress and deadlines of token requests', () => {
  let server;
  before(async () => {
    server = await startDevServer();
  });
  after(() => server?.stop());

  test('the server is reached with its own CA, and a wrong CA is a TlsError (no token sent)', async () => {
    const auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
    try {
      await auth.requestToken(server.client(), 'client-credentials');
      const stranger = await makeCa('not the dev server CA');
      const before = await server.count('token-requests');
      const error = await auth.requestToken(server.client({ trust: { caBundle: stranger.pem } }), 'client-credentials').then(() => null, (e) => e);
      assert.ok(error instanceof TlsError, String(error));
      assert.equal(error.code, 'tls');
      assert.match(error.message, /UnknownIssuer|unknown issuer/i);
      assert.equal(await server.count('token-requests'), before);
    } finally {
      await auth.close();
    }
  });

  test('the egress policy refuses a destination no rule names, before anything is sent', async () => {
    const auth = await GatewayAuth.open({ egress: ['auth.example.com:443'] });
    try {
      const error = await auth.requestToken(server.client(), 'client-credentials').then(() => null, (e) => e);
      assert.ok(error instanceof TransportError, String(error));
      assert.equal(error.netError, 'denied');
      assert.equal(auth.connectionsOpened, 0);
    } finally {
      await auth.close();
    }
    // "*" allows public names only: loopback needs an address rule.
    const wildcard = await GatewayAuth.open({ egress: ['*'] });
    try {
      const error = await wildcard.requestToken(server.client(), 'client-credentials').then(() => null, (e) => e);
      assert.ok(error instanceof TransportError, String(error));
      assert.equal(error.netError, 'denied');
      assert.match(error.detail, /special-purpose/);
    } finally {
      await wildcard.close();
    }
  });

  test('two plugins in one process keep their own egress policy and store', async () => {
    const open = await GatewayAuth.open({ egress: ['127.0.0.1'] });
    const closed = await GatewayAuth.open({ egress: [] });
    try {
      const [token, refused] = await Promise.all([
        open.requestToken(server.client(), 'client-credentials'),
        closed.requestToken(server.client(), 'client-credentials').then(() => null, (e) => e),
      ]);
      assert.equal(token.tokenType, 'Bearer');
      assert.ok(refused instanceof TransportError && refused.netError === 'denied', String(refused));
      await open.openSession('mine', server.client(), 'client-credentials');
      await open.accessToken('mine');
      assert.notEqual(open.store, closed.store);
      assert.equal(await closed.sessionStatus('mine'), null, 'the other plugin has no such session');
    } finally {
      await open.close();
      await closed.close();
    }
  });

  test('a name that resolves to a private address is refused after resolution', async () => {
    const auth = await GatewayAuth.open({ egress: ['*'], resolve: async () => ['169.254.169.254', '10.0.0.1'] });
    try {
      const client = server.client({ tokenEndpoint: 'https://metadata.example/token' });
      const error = await auth.requestToken(client, 'client-credentials').then(() => null, (e) => e);
      assert.ok(error instanceof TransportError, String(error));
      assert.equal(error.netError, 'denied');
      assert.equal(auth.connectionsOpened, 0);
    } finally {
      await auth.close();
    }
  });

  test('a silent server ends the token request in a timeout by the client deadline', async () => {
    const sockets = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise((r) => silent.listen(0, '127.0.0.1', r));
    const auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
    try {
      const client = server.client({ tokenEndpoint: `https://127.0.0.1:${silent.address().port}/token`, timeoutMs: 800 });
      const started = Date.now();
      const error = await auth.requestToken(client, 'client-credentials').then(() => null, (e) => e);
      const took = Date.now() - started;
      assert.ok(error instanceof TransportError, String(error));
      assert.equal(error.netError, 'timeout');
      assert.ok(took >= 700 && took < 1500, `ended after ${took} ms`);
      assert.ok(sockets.length >= 1, 'the server was reached');
    } finally {
      await auth.close();
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  test('a client deadline that does not fit the call timeout is refused as a config error', async () => {
    const auth = await GatewayAuth.open({ egress: ['127.0.0.1'], callTimeoutMs: 5000 });
    try {
      await assert.rejects(auth.requestToken(server.client({ timeoutMs: 4000 }), 'client-credentials'), ConfigError);
    } finally {
      await auth.close();
    }
  });
});
