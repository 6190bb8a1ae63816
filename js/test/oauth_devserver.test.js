// Every grant and client-authentication method against the development server,
// through the JavaScript host (OAuth instance in a worker, sockets on this thread).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayAuth, ProtocolError, TlsError } from '../src/index.js';
import {
  JWT_BEARER_ISSUER, JWT_ES256_CLIENT_ID, JWT_RS256_CLIENT_ID, MTLS_CLIENT_ID, PASSWORD,
  POST_CLIENT_ID, POST_CLIENT_SECRET, PUBLIC_CLIENT_ID, USERNAME, startDevServer,
} from './support/devserver.js';
import { makeCa } from './support/certs.js';

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
    assert.ok(token.expiresAt.getTime() > Date.now() + 3000_000);
    assert.match(token.accessToken, /\S{16,}/);
  });
});
