// Errors: one `Error` subclass per case of the WIT `oauth-error` and `tls-error`
// variants, each with `code` (the WIT case name) and the case's fields. Timestamps are
// `Date`s; durations are numbers of seconds, as the WIT has them. No secret reaches a
// message: the plugin redacts what it reports, and this module adds only case names.

/** The base class of every error this package throws. */
export class GatewayAuthError extends Error {
  constructor(code, message, fields = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    Object.assign(this, fields);
  }
}

/** A failure of an OAuth operation (`oauth-error`). */
export class OAuthError extends GatewayAuthError {}
/** Rejected before any request: the text says what to fix. */
export class ConfigError extends OAuthError {}
/** The server answered with an RFC 6749 §5.2 error body. */
export class ProtocolError extends OAuthError {}
/** A non-2xx answer without a standard error body (redirects included). */
export class HttpStatusError extends OAuthError {}
/** A 2xx answer that is no usable token. */
export class InvalidResponseError extends OAuthError {}
/** The connection failed (`net-error`: `netError` is its case, `detail` its text). */
export class TransportError extends OAuthError {}
/** A person must authorize again. */
export class AuthorizationRequiredError extends OAuthError {}
/** The session is backing off after transient failures until `retryAt`. */
export class BackoffError extends OAuthError {}
/** The shared store could not be used where the call needed it. */
export class StoreError extends OAuthError {}

/**
 * A TLS failure: trust material refused by `prepare`, an upstream session's handshake
 * or protocol failure (`code` is the `tls-error` case: `peer-certificate`,
 * `peer-alert`, `malformed-pem`, ...), or the TLS failure of a token request (`code`
 * `tls`; also an `OAuthError` by `isOAuth`).
 */
export class TlsError extends GatewayAuthError {
  get isOAuth() {
    return this.code === 'tls';
  }
}

/** A call that did not end by the instance's call timeout: the instance was replaced
 * (cache settings and open sessions replayed into the new one). */
export class DeadlineExceededError extends GatewayAuthError {}

/** The plugin trapped (a bug in it or in a host import): the instance was replaced. */
export class TrapError extends GatewayAuthError {}

const date = (seconds) => (seconds === undefined || seconds === null ? null : new Date(Number(seconds) * 1000));
const seconds = (v) => (v === undefined || v === null ? null : Number(v));

function netErrorText(e) {
  return e.val === undefined ? e.tag : `${e.tag}: ${e.val}`;
}

/** The `Error` for an `oauth-error` payload. */
export function oauthError(payload) {
  const { tag, val } = payload;
  switch (tag) {
    case 'config':
      return new ConfigError(tag, `configuration: ${val}`, { detail: val });
    case 'protocol':
      return new ProtocolError(tag, `the server refused: ${val.error}${val.description ? ` (${val.description})` : ''}`, {
        status: val.status,
        error: val.error,
        description: val.description ?? null,
        uri: val.uri ?? null,
        retryAfter: seconds(val.retryAfter),
      });
    case 'http-status':
      return new HttpStatusError(tag, `HTTP ${val.status} without a standard error body`, {
        status: val.status,
        snippet: val.snippet,
        retryAfter: seconds(val.retryAfter),
      });
    case 'invalid-response':
      return new InvalidResponseError(tag, `unusable answer: ${val}`, { detail: val });
    case 'tls':
      return new TlsError(tag, `TLS: ${val}`, { detail: val });
    case 'transport':
      return new TransportError(tag, `transport: ${netErrorText(val)}`, {
        netError: val.tag,
        detail: val.val ?? null,
      });
    case 'authorization-required':
      return new AuthorizationRequiredError(tag, `authorization required: ${val}`, { detail: val });
    case 'backoff':
      return new BackoffError(tag, `backing off until ${date(val.retryAt).toISOString()} after ${val.failures} failures: ${val.lastError}`, {
        retryAt: date(val.retryAt),
        failures: val.failures,
        lastError: val.lastError,
      });
    case 'store':
      return new StoreError(tag, `store: ${val}`, { detail: val });
    default:
      return new OAuthError(String(tag), `OAuth error ${tag}`, { detail: val ?? null });
  }
}

/** The `Error` for a `tls-error` payload. */
export function tlsError(payload) {
  const { tag, val } = payload;
  const fields = { detail: val === undefined ? null : val };
  if (tag === 'too-large') {
    fields.limit = val;
  }
  return new TlsError(tag, val === undefined ? tag.replaceAll('-', ' ') : `${tag.replaceAll('-', ' ')}: ${val}`, fields);
}

export { date as toDate };
