// Types of the gateway-auth package for Node.js (the JavaScript host of the gateway-auth
// WebAssembly component). Timestamps are `Date`s; counters are numbers; durations
// keep the WIT's units (seconds, or milliseconds where the name says so).

import type { Agent, AgentOptions } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Trust material for one upstream or authorization server (WIT `trust-spec`). */
export interface TrustSpec {
  /** PEM text with one or more CA certificates; may be empty only with `webRoots`. */
  caBundle?: string;
  /** PEM client certificate chain, for mutual TLS. */
  clientCertificate?: string | null;
  /** PEM private key of `clientCertificate` (PKCS#8, PKCS#1 or SEC1). */
  clientKey?: string | null;
  /** Whether the public web roots are trusted as well. */
  webRoots?: boolean;
}

/** A prepared configuration (WIT `profile`). */
export interface Profile {
  /** Hex SHA-256 of the canonical DER material and options. */
  id: string;
  anchors: number;
  mutualTls: boolean;
  /** The earliest `notAfter` of the material; null when only web roots are trusted. */
  notAfter: Date | null;
  /** Whether this answer came from the cache. */
  cached: boolean;
}

export interface CacheSettings {
  /** The most entries kept; at least 1. */
  capacity: number;
  /** How long an entry stays usable after it was built; absent: until evicted. */
  ttlSeconds?: number | null;
  /** Which entry makes room for a new one (default `lru`; see wit/tls-cache.wit). */
  policy?: 'lru' | 'tiny-lfu';
}

export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
  rejected: number;
  size: number;
  capacity: number;
}

export type JwtAlgorithm = 'rs256' | 'es256';

export interface SigningKey {
  algorithm: JwtAlgorithm;
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  keyId?: string | null;
}

export type ClientAuth =
  | { type: 'none' }
  | { type: 'client-secret-basic'; secret: string }
  | { type: 'client-secret-post'; secret: string }
  | { type: 'private-key-jwt'; key: SigningKey }
  | { type: 'tls-client-auth' };

/** One OAuth client at one authorization server (WIT `client`). */
export interface Client {
  clientId: string;
  auth: ClientAuth;
  /** The issuer; endpoints not given are discovered from it (RFC 8414, then OIDC). */
  issuer?: string | null;
  tokenEndpoint?: string | null;
  authorizationEndpoint?: string | null;
  deviceAuthorizationEndpoint?: string | null;
  revocationEndpoint?: string | null;
  redirectUri?: string | null;
  scopes?: string[];
  audience?: string | null;
  /** Resource indicators (RFC 8707). */
  resources?: string[];
  /** TLS trust for every endpoint of this client. */
  trust: TrustSpec;
  /** The deadline of one call, retries included (default 10000). */
  timeoutMs?: number | null;
  refreshSkewSeconds?: number | null;
  refreshJitterSeconds?: number | null;
  failureHoldOffSeconds?: number | null;
  /** Extra authorization request parameters, in order. */
  authorizationParams?: Array<[string, string]> | Record<string, string>;
  /** DPoP (RFC 9449): a key per session, made in the plugin and stored with it, or a fixed key. */
  dpop?: 'per-session' | { key: SigningKey } | null;
}

export interface TokenExchangeFields {
  subjectToken: string;
  subjectTokenType: string;
  actorToken?: string | null;
  actorTokenType?: string | null;
  requestedTokenType?: string | null;
}

/** A grant of `requestToken`. */
export type Grant =
  | 'client-credentials'
  | { type: 'client-credentials' }
  | { type: 'password'; username: string; password: string }
  | { type: 'authorization-code'; code: string; codeVerifier?: string | null }
  | { type: 'refresh-token'; refreshToken: string }
  | ({ type: 'token-exchange' } & TokenExchangeFields)
  | { type: 'jwt-bearer'; assertion: string }
  | { type: 'device-code'; deviceCode: string };

export interface AssertionSigner {
  signingKey: SigningKey;
  issuer: string;
  subject: string;
  audience?: string | null;
  lifetimeSeconds?: number | null;
}

/** How a session obtains its first token. */
export type SessionGrant =
  | 'client-credentials'
  | 'authorization-code'
  | 'device-code'
  | { type: 'client-credentials' }
  | { type: 'authorization-code' }
  | { type: 'device-code' }
  | { type: 'password'; username: string; password: string }
  | ({ type: 'token-exchange' } & TokenExchangeFields)
  | { type: 'jwt-bearer'; assertion: string }
  | { type: 'signed-jwt-bearer'; signer: AssertionSigner }
  | { type: 'refresh-token'; refreshToken: string };

export interface Token {
  accessToken: string;
  tokenType: string;
  /** null when the server did not say. */
  expiresAt: Date | null;
  scopes: string[];
  /** Returned by `requestToken` only; sessions keep theirs. */
  refreshToken: string | null;
  idToken: string | null;
  issuedTokenType: string | null;
}

export interface Authorization {
  url: string;
  state: string;
  expiresAt: Date;
}

export interface DeviceAuthorization {
  userCode: string;
  verificationUri: string;
  verificationUriComplete: string | null;
  expiresAt: Date;
  intervalSeconds: number;
}

export type SessionPhase = 'empty' | 'valid' | 'authorizing' | 'backoff' | 'authorization-required' | 'failed';

export interface SessionState {
  phase: SessionPhase;
  expiresAt: Date | null;
  hasRefreshToken: boolean;
  retryAt: Date | null;
  failures: number;
  refusals: number;
  scopes: string[];
  lease: { holder: string; expiresAt: Date } | null;
}

/** A response's `WWW-Authenticate` field lines (`res.headersDistinct['www-authenticate']`),
 * or one line. */
export type WwwAuthenticate = string | readonly string[];

/** What a protected resource's challenge and metadata say about authorizing for it
 * (RFC 9728, then its authorization server's metadata): enough to make the `Client`
 * of a session (WIT `resource-authorization`). */
export interface ResourceAuthorization {
  /** The resource identifier from its metadata: send it as the client's `resources`. */
  resource: string;
  /** The authorization server chosen: the first `https` issuer the resource lists. */
  issuer: string;
  /** The challenge's `scope`, else the resource's `scopes_supported`, else none. */
  scopes: string[];
  authorizationEndpoint: string | null;
  tokenEndpoint: string | null;
  /** RFC 7591, when the server takes registrations. */
  registrationEndpoint: string | null;
  /** RFC 9126. */
  pushedAuthorizationRequestEndpoint: string | null;
  /** `require_pushed_authorization_requests` (RFC 9126 §5). */
  pushedAuthorizationRequired: boolean;
  /** An https URL may serve as `client_id` (`client_id_metadata_document_supported`). */
  clientIdMetadataDocumentSupported: boolean;
  /** The server's `dpop_signing_alg_values_supported` (RFC 9449 §5.1). */
  dpopAlgorithms: string[];
  /** The resource's `dpop_bound_access_tokens_required` (RFC 9728 §2). */
  dpopRequired: boolean;
  /** The challenge's `error` (`invalid_token`, `insufficient_scope`, ...). */
  error: string | null;
}

/** A dynamic client registration to make (RFC 7591 §2), or to reuse when one was made
 * for the same issuer and redirect URIs (WIT `registration-request`). */
export interface RegistrationRequest {
  /** With `redirectUris`, what the registration is kept under in the store. */
  issuer: string;
  /** Discovered from `issuer` when absent. */
  registrationEndpoint?: string | null;
  redirectUris: string[];
  /** Empty: `authorization_code` and `refresh_token`. */
  grantTypes?: string[];
  /** `none` (the default: a public client), `client_secret_basic` or `client_secret_post`. */
  tokenEndpointAuthMethod?: string | null;
  clientName?: string | null;
  /** `scope` to register for. */
  scopes?: string[];
  /** An https URL to present as `client_id` instead of registering, when the server
   * takes client ID metadata documents. */
  clientIdMetadataDocument?: string | null;
  /** The TLS trust of the authorization server. */
  trust: TrustSpec;
  /** The deadline of the call, waiting for another replica's registration included (10000). */
  timeoutMs?: number | null;
}

/** Where a registration came from: this call, the store (an earlier registration of
 * this or another replica), or the client ID metadata document URL. */
export type RegistrationSource = 'registered' | 'stored' | 'metadata-document';

/** A client identity at an authorization server (WIT `registration`). */
export interface Registration {
  clientId: string;
  /** For a confidential registration. */
  clientSecret: string | null;
  /** When the secret expires; null: never. */
  clientSecretExpiresAt: Date | null;
  /** The authentication method the server registered. */
  tokenEndpointAuthMethod: string;
  source: RegistrationSource;
}

/** One instance's figures (WIT `plugin-metrics`). */
export interface PluginMetrics {
  cache: CacheStats;
  handshakesFull: number;
  handshakesResumed: number;
  tokenRequests: Array<{ grant: string; outcome: string; count: number }>;
  tokenRequestDurations: Array<{ grant: string; boundsMs: number[]; cumulative: number[]; sumMs: number; count: number }>;
  sessions: Array<{ phase: SessionPhase; sessions: number }>;
  profiles: Array<{ id: string; notAfter: Date }>;
}

export interface TlsInfo {
  alpn: string | null;
  version: string | null;
  cipherSuite: string | null;
  resumed: boolean;
}

/**
 * A token store. `get` resolves the bytes or undefined; `compareAndSwap` writes
 * `value` (undefined deletes) only if the stored value equals `expected` (undefined:
 * nothing stored), atomically, and resolves whether it wrote. A rejection is a store
 * failure the plugin handles; a result of the wrong type traps the call.
 */
export interface Store {
  get(key: string): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  compareAndSwap(key: string, expected: Uint8Array | undefined, value: Uint8Array | undefined): boolean | Promise<boolean>;
}

export interface GatewayAuthOptions {
  /** Allow-list rules for the plugin's own connections; default none. */
  egress?: string[] | EgressPolicy;
  /** A store, or a URL: `memory:`, `redis://HOST:PORT/DB[?prefix=P]`. Default memory. */
  store?: Store | string;
  /** OAuth workers (1). Each session lives on one of them (chosen by its key), so a slow
   * token endpoint holds up only the sessions sharing its worker. */
  workers?: number;
  /** The longest an OAuth call may take before the instance is replaced (60000). */
  callTimeoutMs?: number;
  /** The OAuth instance's memory limit (64 MiB); a call that leaves it above ends with
   * TrapError and the instance is replaced. */
  memoryLimitBytes?: number;
  /** How long the OAuth worker waits for one store operation (5000). */
  storeWaitMs?: number;
  /** Initial cache settings of both instances. */
  cache?: CacheSettings;
  /** Name resolution for the plugin's connections (default `dns.lookup`, all addresses). */
  resolve?: (host: string, port: number) => Promise<string[]>;
}

export interface ConnectOptions {
  host: string;
  port?: number;
  trust: TrustSpec;
  /** The TLS server name (default `host`). */
  servername?: string;
  /** ALPN protocols offered, most preferred first. */
  alpn?: string[];
  /** Bound on the TCP connect and the handshake (10000). */
  timeoutMs?: number;
}

/** A plaintext stream to an upstream over the plugin's TLS. */
export class TlsStream extends Duplex {
  readonly encrypted: true;
  authorized: boolean;
  alpnProtocol: string | false;
  readonly servername: string;
  readonly connecting: boolean;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  info(): TlsInfo | null;
  getProtocol(): string | null;
  isSessionReused(): boolean;
  setNoDelay(noDelay?: boolean): this;
  setKeepAlive(enable?: boolean, initialDelay?: number): this;
  setTimeout(ms: number, callback?: () => void): this;
  ref(): this;
  unref(): this;
}

/** A raw sans-IO TLS session of the plugin (most callers want `connect`). */
export interface TlsSessionHandle {
  advance(incoming: Uint8Array, plaintext: Uint8Array): { outgoing: Uint8Array; plaintext: Uint8Array; state: 'handshaking' | 'open' | 'peer-closed' | 'closed' };
  close(): Uint8Array;
  info(): { alpn?: string; version?: string; cipherSuite?: string; resumed: boolean };
}

export class GatewayAuth {
  static open(options?: GatewayAuthOptions): Promise<GatewayAuth>;
  readonly egress: EgressPolicy;
  readonly store: Store;
  /** How often the OAuth instance was replaced after a trap or a missed deadline. */
  readonly recoveries: number;
  /** Connections opened under the egress policy so far (the plugin's own and upstream streams). */
  readonly connectionsOpened: number;

  configure(settings: CacheSettings): Promise<void>;
  prepare(trust: TrustSpec): Promise<Profile>;
  /** A prepared profile by id: a cache hit without the material; `unknown-profile` once evicted or expired. */
  lookup(id: string): Promise<Profile>;
  invalidate(id: string): Promise<boolean>;
  clear(): Promise<void>;
  stats(): Promise<CacheStats>;
  /** `oauth` is the first worker's figures, `oauthWorkers` every worker's. */
  metrics(): Promise<{ upstream: PluginMetrics; oauth: PluginMetrics; oauthWorkers: PluginMetrics[] }>;

  /** How to authorize for the protected resource at `resourceUrl` (RFC 9728), from its
   * challenge's field lines (possibly none) or its well-known metadata. */
  discoverResource(resourceUrl: string, wwwAuthenticate: WwwAuthenticate, trust: TrustSpec): Promise<ResourceAuthorization>;
  /** A dynamic registration (RFC 7591), made once per issuer and redirect URIs for every replica sharing the store. */
  registerClient(request: RegistrationRequest): Promise<Registration>;
  requestToken(client: Client, grant: Grant): Promise<Token>;
  openSession(key: string, client: Client, grant: SessionGrant): Promise<void>;
  accessToken(key: string): Promise<Token>;
  /** A token other than `rejected`, which an upstream refused although it looked valid. */
  renewToken(key: string, rejected: string | Token): Promise<Token>;
  beginAuthorization(key: string): Promise<Authorization>;
  /** A new authorization with the session's scopes and those of a 403 `insufficient_scope` challenge. */
  beginStepUp(key: string, wwwAuthenticate: WwwAuthenticate): Promise<Authorization>;
  /** A DPoP proof for the gateway's request with the session's token (`ath`), with the resource server's nonce if it asked. */
  dpopProof(key: string, method: string, url: string, nonce?: string | null): Promise<string>;
  completeAuthorization(key: string, state: string, code: string, iss?: string | null): Promise<Token>;
  beginDeviceAuthorization(key: string): Promise<DeviceAuthorization>;
  pollDeviceAuthorization(key: string): Promise<Token | null>;
  sessionStatus(key: string): Promise<SessionState | null>;
  revoke(key: string): Promise<void>;
  closeSession(key: string): Promise<void>;
  forgetSession(key: string): Promise<void>;

  tlsSession(trust: TrustSpec, serverName: string, alpn?: string[]): Promise<TlsSessionHandle>;
  /** A TCP socket to `host`:`port` under the egress policy (rejects with a WIT
   * `net-error` `{ tag, val }`). */
  dial(host: string, port: number, timeoutMs: number): Promise<Socket>;
  /** An upstream stream; the destination must pass the egress policy. */
  connect(options: ConnectOptions): TlsStream;
  /** For `https.request({ createConnection })`. */
  createConnection(trust: TrustSpec, defaults?: Partial<ConnectOptions>): (options: { host?: string; hostname?: string; port?: number | string; servername?: string }) => TlsStream;
  /** A `connect` option for undici's `Agent`/`Client`: connections are `TlsStream`s. */
  undiciConnect(trust: TrustSpec, options?: { alpn?: string[]; timeoutMs?: number }): (options: { hostname?: string; host?: string; port?: string | number; protocol?: string; servername?: string | null }, callback: (error: Error | null, socket: TlsStream | null) => void) => void;
  /** An `https.Agent` (keep-alive) whose connections are `TlsStream`s with `trust`. */
  agent(trust: TrustSpec, options?: AgentOptions & { timeoutMs?: number }): Agent;
  close(): Promise<void>;
}

export function upstreamAgent(plugin: GatewayAuth, trust: TrustSpec, options?: AgentOptions & { timeoutMs?: number }): Agent;

export const LEASE_MARGIN_MS: number;

export class EgressPolicy {
  constructor(rules?: string[]);
  /** null when allowed, else why not. */
  checkName(host: string, port: number): string | null;
  checkAddress(address: string, port: number): string | null;
}
export class EgressRuleError extends Error {
  code: 'egress-rule';
}
export function isPublic(address: string): boolean;

export class MemoryStore implements Store {
  get(key: string): Uint8Array | undefined;
  compareAndSwap(key: string, expected: Uint8Array | undefined, value: Uint8Array | undefined): boolean;
}
export class RedisStore implements Store {
  constructor(url: string, options?: { prefix?: string });
  readonly prefix: string;
  get(key: string): Promise<Uint8Array | undefined>;
  compareAndSwap(key: string, expected: Uint8Array | undefined, value: Uint8Array | undefined): Promise<boolean>;
  close(): Promise<void>;
}
export function openStore(url: string): MemoryStore | RedisStore;
export const DEFAULT_REDIS_PREFIX: string;
export const REDIS_TIMEOUT_MS: number;

/** Base class; `code` is the WIT case (or `deadline-exceeded`, `trap`). */
export class GatewayAuthError extends Error {
  code: string;
}
export class OAuthError extends GatewayAuthError {}
export class ConfigError extends OAuthError {
  code: 'config';
  detail: string;
}
export class ProtocolError extends OAuthError {
  code: 'protocol';
  status: number;
  error: string;
  description: string | null;
  uri: string | null;
  retryAfter: number | null;
}
export class HttpStatusError extends OAuthError {
  code: 'http-status';
  status: number;
  snippet: string;
  retryAfter: number | null;
}
export class InvalidResponseError extends OAuthError {
  code: 'invalid-response';
  detail: string;
}
export class TransportError extends OAuthError {
  code: 'transport';
  netError: 'denied' | 'resolve' | 'connect' | 'timeout' | 'reset' | 'closed' | 'other';
  detail: string | null;
}
export class AuthorizationRequiredError extends OAuthError {
  code: 'authorization-required';
  detail: string;
}
export class BackoffError extends OAuthError {
  code: 'backoff';
  retryAt: Date;
  failures: number;
  lastError: string;
}
export class StoreError extends OAuthError {
  code: 'store';
  detail: string;
}
/** `code`: a `tls-error` case, or `tls` for a token request's TLS failure. */
export class TlsError extends GatewayAuthError {
  code: 'tls' | 'no-certificates' | 'malformed-pem' | 'bad-certificate' | 'certificate-without-key'
    | 'key-without-certificate' | 'bad-key' | 'key-mismatch' | 'too-large' | 'unknown-profile'
    | 'bad-server-name' | 'peer-certificate' | 'peer-alert' | 'protocol' | 'closed';
  detail: string | null;
  /** For `too-large`: the limit in bytes. */
  limit?: number;
  readonly isOAuth: boolean;
}
export class DeadlineExceededError extends GatewayAuthError {
  code: 'deadline-exceeded';
  timeoutMs: number;
}
export class TrapError extends GatewayAuthError {
  code: 'trap';
}
