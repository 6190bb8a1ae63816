// Interoperability with a third-party server: oidc-provider (OpenID Certified), found
// by discovery from its issuer alone.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorizationRequiredError, GatewayAuth, ProtocolError } from '../src/index.js';
import { REDIRECT_URI, SECRET, startOidcProvider } from './support/oidc.js';

describe('oidc-provider', () => {
  let op;
  let auth;
  before(async () => {
    op = await startOidcProvider();
    auth = await GatewayAuth.open({ egress: ['127.0.0.1'] });
  });
  after(async () => {
    await auth?.close();
    await op?.close();
  });

  const basic = (fields = {}) => ({
    clientId: 'basic', auth: { type: 'client-secret-basic', secret: SECRET }, issuer: op.issuer, trust: op.trust, ...fields,
  });

  test('client credentials with client_secret_basic, endpoints discovered from the issuer', async () => {
    const token = await auth.requestToken(basic({ scopes: ['api:read'] }), 'client-credentials');
    assert.equal(token.tokenType, 'Bearer');
    assert.ok(token.expiresAt > new Date());
    assert.equal(await op.active(token.accessToken), true);
  });

  test('client credentials with private_key_jwt (ES256)', async () => {
    const client = {
      clientId: 'jwt',
      auth: { type: 'private-key-jwt', key: { algorithm: 'es256', privateKeyPem: op.privateKeyPem, keyId: 'gateway-key' } },
      issuer: op.issuer,
      trust: op.trust,
      scopes: ['api:read'],
    };
    const first = await auth.requestToken(client, 'client-credentials');
    const second = await auth.requestToken(client, 'client-credentials');
    assert.notEqual(first.accessToken, second.accessToken);
  });

  test('a wrong secret is answered invalid_client', async () => {
    const error = await auth.requestToken(basic({ auth: { type: 'client-secret-basic', secret: 'nope' } }), 'client-credentials').then(() => null, (e) => e);
    assert.ok(error instanceof ProtocolError, String(error));
    assert.equal(error.error, 'invalid_client');
  });

  test('an authorization-code session refreshes with rotation, keeps the newest refresh token, and revocation ends it', async () => {
    const client = {
      clientId: 'web',
      auth: { type: 'client-secret-basic', secret: SECRET },
      issuer: op.issuer,
      redirectUri: REDIRECT_URI,
      scopes: ['openid', 'offline_access'],
      trust: op.trust,
      authorizationParams: [['prompt', 'consent']],
    };
    await auth.openSession('alice', client, 'authorization-code');
    const authorization = await auth.beginAuthorization('alice');
    const { code, state, iss } = await op.authorize(authorization.url);
    assert.equal(iss, op.issuer, 'oidc-provider sends iss (RFC 9207)');
    const first = await auth.completeAuthorization('alice', state, code, iss);
    assert.ok(first.idToken, 'an ID token came with it');
    assert.equal((await auth.sessionStatus('alice')).hasRefreshToken, true);

    assert.equal((await auth.accessToken('alice')).accessToken, first.accessToken, 'served while fresh');
    // Its access tokens live 2 s: past half of that the session refreshes.
    await new Promise((r) => setTimeout(r, 1100));
    const second = await auth.accessToken('alice');
    assert.notEqual(second.accessToken, first.accessToken, 'refreshed');
    await new Promise((r) => setTimeout(r, 1100));
    const third = await auth.accessToken('alice');
    assert.notEqual(third.accessToken, second.accessToken, 'refreshed again with the rotated refresh token');
    assert.equal(await op.active(third.accessToken), true);

    await auth.revoke('alice');
    assert.equal(await op.active(third.accessToken), false, 'revoked at the server');
    const after = await auth.accessToken('alice').then(() => null, (e) => e);
    assert.ok(after instanceof AuthorizationRequiredError, String(after));
  });

  test('a code redeemed without the session PKCE verifier is refused, and an unknown refresh token is invalid_grant', async () => {
    const client = {
      clientId: 'web', auth: { type: 'client-secret-basic', secret: SECRET }, issuer: op.issuer, redirectUri: REDIRECT_URI, scopes: ['openid', 'offline_access'], trust: op.trust,
    };
    await auth.openSession('bob', client, 'authorization-code');
    const authorization = await auth.beginAuthorization('bob');
    const { code, state, iss } = await op.authorize(authorization.url);
    const exchanged = await auth.requestToken(client, { type: 'authorization-code', code, codeVerifier: undefined }).then(() => null, (e) => e);
    assert.ok(exchanged instanceof ProtocolError, 'the code needs the session\'s PKCE verifier');
    await auth.completeAuthorization('bob', state, code, iss);
    const refreshToken = (await auth.requestToken(client, { type: 'refresh-token', refreshToken: 'not-a-refresh-token' }).then(() => null, (e) => e));
    assert.ok(refreshToken instanceof ProtocolError);
    assert.equal(refreshToken.error, 'invalid_grant');
  });
});
