// Starts the development authorization server (`gateway-auth dev-server`, built by
// `cargo build -p gateway-auth --bin gateway-auth`) for a test, with its CA and the
// bundled clients' key material written to a temporary directory.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const BINARY = process.env.GATEWAY_AUTH_BIN
  ?? fileURLToPath(new URL('../../../target/debug/gateway-auth', import.meta.url));

// devserver/src/lib.rs `defaults`.
export const BASIC_CLIENT_ID = 'basic-client';
export const BASIC_CLIENT_SECRET = 's3c:r%t pa ss';
export const POST_CLIENT_ID = 'post-client';
export const POST_CLIENT_SECRET = 'p0st&secret=a+b';
export const PUBLIC_CLIENT_ID = 'public-client';
export const JWT_RS256_CLIENT_ID = 'jwt-rs256-client';
export const JWT_ES256_CLIENT_ID = 'jwt-es256-client';
export const MTLS_CLIENT_ID = 'mtls-client';
export const USERNAME = 'alice';
export const PASSWORD = 'wonder land&=%';
export const REDIRECT_URI = 'https://gateway.example/callback';
export const JWT_BEARER_ISSUER = 'https://assertions.gateway.example';

/** Starts one server with `flags` (always with --control); stop it with `stop()`. */
export async function startDevServer(...flags) {
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: build it with \`cargo build -p gateway-auth --bin gateway-auth\``);
  }
  const dir = mkdtempSync(join(tmpdir(), 'gateway-auth-dev-'));
  const caPath = join(dir, 'ca.pem');
  const material = join(dir, 'material');
  const child = spawn(BINARY, ['dev-server', '--ca-out', caPath, '--material-out', material, '--control', ...flags], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const iterator = lines[Symbol.asyncIterator]();
  const info = {};
  const timer = setTimeout(() => child.kill(), 20000);
  for (;;) {
    const { value, done } = await iterator.next();
    if (done) {
      throw new Error('the development server ended before it was ready');
    }
    const m = value.match(/^\s+(issuer|token endpoint):\s+(\S+)/);
    if (m) info[m[1]] = m[2];
    if (value.startsWith('press Ctrl-C')) break;
  }
  clearTimeout(timer);
  const read = (name) => readFileSync(join(material, name), 'utf8');
  const caPem = readFileSync(caPath, 'utf8');
  const server = {
    issuer: info.issuer,
    tokenEndpoint: info['token endpoint'],
    caPem,
    trust: { caBundle: caPem },
    mtlsCertPem: read('mtls-client.crt'),
    mtlsKeyPem: read('mtls-client.key'),
    rs256KeyPem: read('jwt-rs256-client.key'),
    es256KeyPem: read('jwt-es256-client.key'),
    jwtBearerIssuerKeyPem: read('jwt-bearer-issuer.key'),
    /** One `--control` command; resolves its one-line answer. */
    async command(line) {
      child.stdin.write(`${line}\n`);
      const { value } = await iterator.next();
      return value.trim();
    },
    async count(what) {
      return Number(await server.command(what));
    },
    /** A client of this server with every endpoint named. */
    client(fields = {}) {
      return {
        clientId: BASIC_CLIENT_ID,
        auth: { type: 'client-secret-basic', secret: BASIC_CLIENT_SECRET },
        tokenEndpoint: info['token endpoint'],
        authorizationEndpoint: `${info.issuer}/authorize`,
        deviceAuthorizationEndpoint: `${info.issuer}/device_authorization`,
        revocationEndpoint: `${info.issuer}/revoke`,
        redirectUri: REDIRECT_URI,
        trust: { caBundle: caPem },
        ...fields,
      };
    },
    /** The user consents at an authorization URL: `{ code, state }` of the redirect. */
    authorize(url) {
      return new Promise((resolve, reject) => {
        get(url, { ca: caPem }, (res) => {
          res.resume();
          if (res.statusCode !== 302) {
            reject(new Error(`the authorization was refused: ${res.statusCode}`));
            return;
          }
          const location = new URL(res.headers.location);
          resolve({ code: location.searchParams.get('code'), state: location.searchParams.get('state'), iss: location.searchParams.get('iss') });
        }).on('error', reject);
      });
    },
    stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}
