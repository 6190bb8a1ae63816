// What a TypeScript gateway writes against the package: checked by tsc in
// test/types.test.js (no output is produced).
import https from 'node:https';
import {
  GatewayAuth, ProtocolError, TlsError, TransportError, RedisStore,
  type Client, type Token, type CacheStats, type SessionState, type Registration,
  type ResourceAuthorization,
} from 'gateway-auth';

async function gateway(): Promise<void> {
  const auth = await GatewayAuth.open({ egress: ['auth.example.com:443'], store: new RedisStore('redis://127.0.0.1:6379/0'), cache: { capacity: 100 } });
  const client: Client = {
    clientId: 'gateway',
    auth: { type: 'client-secret-basic', secret: process.env.SECRET ?? '' },
    tokenEndpoint: 'https://auth.example.com/token',
    trust: { caBundle: '-----BEGIN CERTIFICATE-----...' },
    scopes: ['read'],
  };
  await auth.openSession('upstream-a', client, 'client-credentials');
  try {
    const token: Token = await auth.accessToken('upstream-a');
    const expires: Date | null = token.expiresAt;
    void expires;
  } catch (e) {
    if (e instanceof ProtocolError) {
      const status: number = e.status;
      void status;
    } else if (e instanceof TransportError && e.netError === 'timeout') {
      // retry later
    } else if (e instanceof TlsError) {
      const code: string = e.code;
      void code;
    }
  }
  const stats: CacheStats = await auth.stats();
  const evictions: number = stats.evictions;
  void evictions;
  const status: SessionState | null = await auth.sessionStatus('upstream-a');
  void status?.phase;
  const agent = auth.agent({ caBundle: '...' });
  https.request({ host: 'upstream.example', agent }).end();
  https.request({ host: 'upstream.example', createConnection: auth.createConnection({ caBundle: '...' }) as never }).end();
  const stream = auth.connect({ host: 'upstream.example', port: 443, trust: { caBundle: '...' }, alpn: ['http/1.1'] });
  stream.once('secureConnect', () => stream.end('GET / HTTP/1.1\r\nhost: upstream.example\r\n\r\n'));
  await auth.close();
}
void gateway;

async function mcp(auth: GatewayAuth, challenge: string[]): Promise<string> {
  const trust = { webRoots: true };
  const found: ResourceAuthorization = await auth.discoverResource('https://mcp.example/mcp', challenge, trust);
  const registration: Registration = await auth.registerClient({
    issuer: found.issuer, redirectUris: ['https://gateway.example/callback'], trust,
  });
  const secret: string | null = registration.clientSecret;
  await auth.openSession('mcp', {
    clientId: registration.clientId,
    auth: secret === null ? { type: 'none' } : { type: 'client-secret-basic', secret },
    issuer: found.issuer,
    redirectUri: 'https://gateway.example/callback',
    scopes: found.scopes,
    resources: [found.resource],
    trust,
  }, 'authorization-code');
  const stepUp = await auth.beginStepUp('mcp', 'Bearer error="insufficient_scope", scope="mcp:write"');
  return stepUp.url;
}
void mcp;
