// Token stores: where sessions live, shared by instances (and, for Redis, by processes
// and machines). A store is any object with `get(key)` (a Uint8Array, or undefined when
// nothing is stored) and `compareAndSwap(key, expected, value)` (atomic; undefined
// means "no value" / "delete"; resolves whether it wrote), either of which may return a
// Promise. Errors are reported to the plugin as store failures, by their message only.

/** Sessions in this process's memory, shared by the instances given the same object. */
export class MemoryStore {
  constructor() {
    this.values = new Map();
  }

  get(key) {
    return this.values.get(key);
  }

  compareAndSwap(key, expected, value) {
    const current = this.values.get(key);
    const same = current === undefined || expected === undefined
      ? current === expected
      : Buffer.from(current).equals(Buffer.from(expected));
    if (!same) {
      return false;
    }
    if (value === undefined) {
      this.values.delete(key);
    } else {
      this.values.set(key, Uint8Array.from(value));
    }
    return true;
  }
}

/** The key prefix unless another is given (as the Rust host's Redis store). */
export const DEFAULT_REDIS_PREFIX = 'gateway-auth:';

/** How long connecting, and each command, may take (as the Rust host's). */
export const REDIS_TIMEOUT_MS = 2000;

// The Rust host's compare-and-swap script (host/src/store/redis.rs), unchanged:
// KEYS[1]: the key. ARGV: whether a value is expected ("1"/"0"), the expected value,
// whether to write ("1") or delete ("0"), the value. Returns 1 when it wrote.
const COMPARE_AND_SWAP = `
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
return 1
`;

/** `url` with any password replaced, for messages. */
export function withoutPassword(url) {
  const scheme = url.indexOf('://');
  const at = url.lastIndexOf('@');
  return scheme >= 0 && at >= 0 ? `${url.slice(0, scheme)}://[credentials]@${url.slice(at + 1)}` : url;
}

/**
 * Sessions in a Redis database, with the Rust host's key layout (`PREFIX` + session key)
 * and compare-and-swap script, so Rust, Python and Node gateways can share sessions.
 * One connection, opened at the first call and again after a failure.
 */
export class RedisStore {
  constructor(url, { prefix = DEFAULT_REDIS_PREFIX } = {}) {
    this.url = url;
    this.address = withoutPassword(url);
    this.prefix = prefix;
    this.client = null;
  }

  async connection() {
    if (!this.client) {
      const { createClient, RESP_TYPES } = await import('redis');
      const client = createClient({
        url: this.url,
        socket: { connectTimeout: REDIS_TIMEOUT_MS, reconnectStrategy: false },
        disableOfflineQueue: true,
      }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
      client.on('error', () => {});
      this.client = (async () => {
        await client.connect();
        return client;
      })();
      this.client.catch(() => {
        this.client = null;
      });
    }
    return this.client;
  }

  async run(f) {
    let timer;
    try {
      const client = await this.connection();
      return await Promise.race([
        f(client),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${REDIS_TIMEOUT_MS} ms`)), REDIS_TIMEOUT_MS);
        }),
      ]);
    } catch (e) {
      const client = this.client;
      this.client = null;
      if (client) client.then((c) => c.destroy()).catch(() => {});
      throw new Error(`redis at ${this.address}: ${e.message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  async get(key) {
    const value = await this.run((c) => c.get(this.prefix + key));
    return value === null || value === undefined ? undefined : new Uint8Array(value);
  }

  async compareAndSwap(key, expected, value) {
    const flag = (v) => (v === undefined ? '0' : '1');
    const bytes = (v) => (v === undefined ? Buffer.alloc(0) : Buffer.from(v));
    const wrote = await this.run((c) => c.eval(COMPARE_AND_SWAP, {
      keys: [this.prefix + key],
      arguments: [flag(expected), bytes(expected), flag(value), bytes(value)],
    }));
    return Number(wrote) === 1;
  }

  async close() {
    const client = this.client;
    this.client = null;
    if (client) {
      try {
        (await client).destroy();
      } catch {
        // never connected
      }
    }
  }
}

/** Opens the store a URL names, as the other hosts do: `memory:` or
 * `redis://HOST:PORT/DB` (keys under `gateway-auth:` unless the URL ends in `?prefix=P`). */
export function openStore(url) {
  if (url === 'memory:') {
    return new MemoryStore();
  }
  if (url.startsWith('rediss://')) {
    throw new TypeError('rediss:// (Redis over TLS) is not supported: use redis:// on a trusted network or through a TLS tunnel');
  }
  if (url.startsWith('redis://')) {
    const [base, prefix] = url.split('?prefix=');
    return new RedisStore(base, { prefix: prefix ?? DEFAULT_REDIS_PREFIX });
  }
  throw new TypeError(`unknown store ${JSON.stringify(withoutPassword(url))}: use memory: or redis://HOST:PORT/DB`);
}
