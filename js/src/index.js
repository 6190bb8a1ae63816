// gateway-auth for Node.js: the gateway-auth WebAssembly component (a TLS
// client-configuration cache, sans-IO upstream TLS sessions and OAuth 2.0 client
// flows) with a host for Node: sockets under an egress policy, token stores, upstream
// Duplex streams. Timestamps are `Date`s; counters are numbers.
export { GatewayAuth, LEASE_MARGIN_MS } from './plugin.js';
export { TlsStream, upstreamAgent } from './upstream.js';
export { EgressPolicy, EgressRuleError, isPublic } from './egress.js';
export {
  MemoryStore, RedisStore, openStore, DEFAULT_REDIS_PREFIX, REDIS_TIMEOUT_MS,
} from './stores.js';
export {
  GatewayAuthError, OAuthError, ConfigError, ProtocolError, HttpStatusError,
  InvalidResponseError, TransportError, AuthorizationRequiredError, BackoffError,
  StoreError, TlsError, DeadlineExceededError, TrapError,
} from './errors.js';
