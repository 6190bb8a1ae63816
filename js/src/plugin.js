// GatewayAuth: one plugin as a gateway uses it, made of two instances of the component.
//
// - The OAuth instance runs in a worker thread (or several, `workers`, each holding
//   the sessions whose key hashes to it), since its `transport` and `store` imports
//   block: each is answered by this thread's event loop (sockets through `Io`, under
//   the egress policy; the store given), while the worker waits on `Atomics.wait`.
//   This thread never blocks on a token request.
// - The TLS instance runs on this thread: its sans-IO `tls-session`s never block, so
//   upstream streams (upstream.js) cost no thread hop. `prepare`, `stats`, `invalidate`
//   and `clear` are about this instance's cache (the upstreams'); `configure` sets both.
//
// Every call into the OAuth instance ends by the call timeout; one that does not, or one
// that traps, ends with an error and the worker is replaced by a fresh instance into
// which the cache settings and the open sessions are replayed (the store keeps their
// tokens), as the Rust host does (host/src/plugin.rs, host/src/desired.rs).
import { MessageChannel, Worker } from 'node:worker_threads';
import { coreModules, instantiate } from './component.js';
import * as convert from './convert.js';
import { EgressPolicy } from './egress.js';
import {
  ConfigError, DeadlineExceededError, TrapError, oauthError, tlsError,
} from './errors.js';
import { Io } from './io.js';
import { MemoryStore, openStore } from './stores.js';
import { TlsStream, upstreamAgent } from './upstream.js';

/** How long a renewal lease outlives its holder's call deadline (the component's
 * `LEASE_MARGIN_MS`): a client's timeout plus this must stay below the call timeout. */
export const LEASE_MARGIN_MS = 2000;
const DEFAULT_CLIENT_TIMEOUT_MS = 10000;
const DEFAULT_CALL_TIMEOUT_MS = 60000;
const DEFAULT_STORE_WAIT_MS = 5000;
/** The OAuth instance's linear memory limit, as the Rust and Python hosts' 64 MiB. */
const DEFAULT_MEMORY_LIMIT_BYTES = 64 * 1024 * 1024;

/** The worker slot of session `key` among `count`: FNV-1a over its UTF-16 code units. */
export function slotIndex(key, count) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i += 1) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % count;
}

function payloadOf(e) {
  return e && Object.prototype.hasOwnProperty.call(e, 'payload') ? e.payload : null;
}

const noTransport = {
  Connection: class {},
  connect() {
    throw { tag: 'denied', val: 'this instance serves upstream TLS sessions only' };
  },
};
const noStore = {
  get() {
    throw 'this instance serves upstream TLS sessions only';
  },
  compareAndSwap() {
    throw 'this instance serves upstream TLS sessions only';
  },
};

/** The OAuth instance's worker and the thread-side half of its imports. */
class OAuthWorker {
  constructor(modules, io, store, storeWaitMs, memoryLimitBytes) {
    this.io = io;
    this.store = store;
    this.signalBuffer = new SharedArrayBuffer(4);
    this.signal = new Int32Array(this.signalBuffer);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.pending = new Map();
    this.nextId = 1;
    this.dead = null;
    this.connections = new Set();
    port1.on('message', (m) => this.serve(m));
    port1.unref();
    this.worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: { modules, signalBuffer: this.signalBuffer, port: port2, storeWaitMs, memoryLimitBytes },
      transferList: [port2],
    });
    this.worker.unref();
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('error', reject);
      this.worker.once('exit', (code) => reject(new TrapError('trap', `the OAuth worker exited (${code}) while starting`)));
      this.worker.once('message', (m) => (m.ready ? resolve() : reject(new Error('unexpected first message'))));
    });
    this.worker.on('message', (m) => {
      const call = this.pending.get(m.id);
      if (call) {
        this.pending.delete(m.id);
        call.resolve(m);
      }
    });
    const fail = (why) => {
      this.dead = why;
      for (const call of this.pending.values()) call.resolve({ trap: why });
      this.pending.clear();
    };
    this.worker.on('error', (e) => fail(`the OAuth worker failed: ${e.message}`));
    this.worker.on('exit', (code) => fail(`the OAuth worker exited (${code})`));
  }

  /** Answers one import call of the worker, then wakes it. */
  async serve({ id, op, args }) {
    if (op === 'close') {
      this.connections.delete(args[0]);
      this.io.close(args[0]);
      return;
    }
    let answer;
    try {
      let ok;
      switch (op) {
        case 'connect':
          ok = await this.io.connect(...args);
          this.connections.add(ok);
          break;
        case 'read':
          ok = await this.io.read(...args);
          break;
        case 'write':
          ok = await this.io.write(...args);
          break;
        case 'get':
          ok = await this.store.get(args[0]);
          if (ok !== undefined && ok !== null && !ArrayBuffer.isView(ok)) {
            // A store that breaks its contract is a bug in the host: the call traps.
            answer = { id, bug: `the store's get returned ${typeof ok}, not bytes or undefined` };
          }
          ok = ok === undefined || ok === null ? undefined : new Uint8Array(ok.buffer, ok.byteOffset, ok.byteLength);
          break;
        case 'cas':
          ok = await this.store.compareAndSwap(...args);
          if (typeof ok !== 'boolean') {
            answer = { id, bug: `the store's compareAndSwap returned ${typeof ok}, not a boolean` };
          }
          break;
        default:
          throw new Error(`unknown operation ${op}`);
      }
      answer = answer ?? { id, ok };
    } catch (e) {
      answer = { id, err: e && e.tag ? e : String(e && e.message ? e.message : e) };
    }
    this.port.postMessage(answer);
    Atomics.store(this.signal, 0, 1);
    Atomics.notify(this.signal, 0);
  }

  /** Runs one export in the worker; resolves { ok } / { err } / { trap }. */
  call(iface, method, args) {
    if (this.dead) {
      return Promise.resolve({ trap: this.dead });
    }
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, { resolve });
      this.worker.postMessage({ id, iface, method, args });
    });
  }

  async terminate() {
    this.dead = this.dead ?? 'terminated';
    for (const c of this.connections) this.io.close(c);
    this.connections.clear();
    this.port.close();
    await this.worker.terminate();
  }
}

/**
 * A gateway's plugin: the TLS cache and upstream sessions on this thread, the OAuth
 * flows in a worker. Make one with `GatewayAuth.open(options)`.
 */
export class GatewayAuth {
  /**
   * @param {object} [options]
   * @param {string[]} [options.egress] allow-list rules for the plugin's own
   *   connections (token, discovery, revocation endpoints): `auth.example.com:443`,
   *   `*.example.com`, `127.0.0.1`, `10.0.0.0/8:8443`, `*`. Default: none (nothing is
   *   reachable).
   * @param {object|string} [options.store] a store object or URL (`memory:`,
   *   `redis://HOST:PORT/DB`); default a fresh MemoryStore.
   * @param {number} [options.callTimeoutMs] the longest an OAuth call may take (60000).
   * @param {number} [options.workers] OAuth workers (1): each session lives on one
   *   of them (by its key), so a slow token endpoint holds up only the sessions that
   *   share its worker; calls outside sessions go to the least busy one.
   * @param {number} [options.memoryLimitBytes] the OAuth instance's memory limit
   *   (64 MiB): past it after a call, the call ends with TrapError and the instance is
   *   replaced.
   * @param {{capacity: number, ttlSeconds?: number, policy?: 'lru' | 'tiny-lfu'}} [options.cache] cache settings.
   */
  static async open(options = {}) {
    const plugin = new GatewayAuth(options);
    await plugin.#start();
    return plugin;
  }

  #policy;
  #store;
  #io;
  #callTimeoutMs;
  #storeWaitMs;
  #memoryLimitBytes;
  #modules = null;
  #tls = null;
  // The OAuth workers: each has its own instance, queue and applied settings.
  #slots = [];
  #cache = null;
  #cacheRevision = 0;
  #clearRevision = 0;
  #sessions = new Map();
  #closed = false;
  #recoveries = 0;

  constructor(options = {}) {
    this.#policy = options.egress instanceof EgressPolicy ? options.egress : new EgressPolicy(options.egress ?? []);
    this.#store = typeof options.store === 'string' ? openStore(options.store) : options.store ?? new MemoryStore();
    this.#io = new Io(this.#policy, { resolve: options.resolve });
    this.#callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.#storeWaitMs = options.storeWaitMs ?? DEFAULT_STORE_WAIT_MS;
    this.#memoryLimitBytes = options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES;
    if (options.cache) {
      this.#cache = convert.settings(options.cache);
      this.#cacheRevision = 1;
    }
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1) {
      throw new TypeError('workers must be a whole number of at least 1');
    }
    for (let i = 0; i < workers; i += 1) {
      this.#slots.push({
        index: i, worker: null, starting: null, queue: Promise.resolve(), pending: 0, cache: 0, clear: 0,
      });
    }
  }

  async #start() {
    this.#modules = await coreModules();
    this.#tls = await this.#newTls();
    await Promise.all(this.#slots.map((slot) => this.#ensureWorker(slot)));
  }

  async #newTls() {
    const tls = await instantiate({ transport: noTransport, store: noStore });
    if (this.#cache) tls.tlsCache.configure(this.#cache);
    return tls;
  }

  /** The egress policy of the plugin's own connections. */
  get egress() {
    return this.#policy;
  }

  /** The store the sessions live in. */
  get store() {
    return this.#store;
  }

  /** How many times the OAuth instance was replaced after a trap or a missed deadline. */
  get recoveries() {
    return this.#recoveries;
  }

  /** Connections opened under the egress policy so far: the plugin's own (token,
   * discovery, revocation endpoints) and upstream streams. */
  get connectionsOpened() {
    return this.#io.opened;
  }

  /** The worker of `slot`, started if need be with the sessions that live on it and the
   * cache settings replayed. */
  #ensureWorker(slot) {
    if (slot.worker && !slot.worker.dead) {
      return Promise.resolve(slot.worker);
    }
    if (!slot.starting) {
      slot.starting = (async () => {
        const worker = new OAuthWorker(this.#modules, this.#io, this.#store, this.#storeWaitMs, this.#memoryLimitBytes);
        try {
          await worker.ready;
          slot.cache = 0;
          slot.clear = this.#clearRevision;
          for (const [key, [client, grant]] of this.#sessions) {
            if (this.#slotOf(key) !== slot) continue;
            const answer = await this.#bounded(worker, 'oauth', 'openSession', [key, client, grant]);
            if (answer.trap || answer.deadline) {
              // As the Rust host does, a session whose replay breaks the replacement
              // is left out of later replays; the next call starts afresh without it.
              this.#sessions.delete(key);
              throw new TrapError('trap', `replaying session ${JSON.stringify(key)} ${answer.trap ? `trapped: ${answer.trap}` : 'missed the call timeout'}; it is no longer replayed`);
            }
          }
          slot.worker = worker;
          return worker;
        } catch (e) {
          await worker.terminate();
          throw e;
        } finally {
          slot.starting = null;
        }
      })();
    }
    return slot.starting;
  }

  /** The slot a session lives on: always the same one for a key (FNV-1a of the key), so
   * its calls are answered in order by one instance. */
  #slotOf(key) {
    return this.#slots[slotIndex(key, this.#slots.length)];
  }

  /** The slot with the fewest calls waiting, for calls that belong to no session. */
  #idlest() {
    return this.#slots.reduce((best, slot) => (slot.pending < best.pending ? slot : best));
  }

  /** Brings `slot`'s instance up to the cache settings (and clears) made through the
   * other slots. */
  async #sync(slot, worker) {
    if (this.#cache && slot.cache < this.#cacheRevision) {
      const answer = await this.#bounded(worker, 'tlsCache', 'configure', [this.#cache]);
      if (answer.trap || answer.deadline) return answer;
      slot.cache = this.#cacheRevision;
    }
    if (slot.clear < this.#clearRevision) {
      const answer = await this.#bounded(worker, 'tlsCache', 'clear', []);
      if (answer.trap || answer.deadline) return answer;
      slot.clear = this.#clearRevision;
    }
    return null;
  }

  /** One call with the call timeout; past it the worker is terminated. */
  async #bounded(worker, iface, method, args) {
    let timer;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(() => resolve({ deadline: true }), this.#callTimeoutMs);
    });
    try {
      const answer = await Promise.race([worker.call(iface, method, args), deadline]);
      if (answer.deadline || answer.trap) {
        await worker.terminate();
      }
      return answer;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs an OAuth-instance export on the slot of session `key` (or the idlest slot),
   * one call at a time per slot, recovering the instance after a trap or a missed
   * deadline. Resolves the value; rejects with the plugin's error. */
  #oauth(iface, method, args, key = undefined, on = undefined) {
    const slot = on ?? (key === undefined ? this.#idlest() : this.#slotOf(key));
    const run = async () => {
      if (this.#closed) {
        throw new Error('this GatewayAuth is closed');
      }
      const worker = await this.#ensureWorker(slot);
      const answer = (await this.#sync(slot, worker)) ?? (await this.#bounded(worker, iface, method, args));
      if ((answer.deadline || answer.trap) && this.#closed) {
        throw new Error(`this GatewayAuth was closed during ${method}`);
      }
      if (answer.deadline || answer.trap) {
        this.#recoveries += 1;
        slot.worker = null;
        if (!this.#closed) {
          // Bring the replacement up now, so the next call finds it ready.
          this.#ensureWorker(slot).catch(() => {});
        }
        if (answer.deadline) {
          throw new DeadlineExceededError('deadline-exceeded', `${method} did not end within the call timeout (${this.#callTimeoutMs} ms); the instance was replaced`, { timeoutMs: this.#callTimeoutMs });
        }
        throw new TrapError('trap', `${method} trapped: ${answer.trap}; the instance was replaced`);
      }
      if ('err' in answer) {
        throw iface === 'oauth' ? oauthError(answer.err) : tlsError(answer.err);
      }
      return answer.ok;
    };
    slot.pending += 1;
    const result = slot.queue.then(run, run).finally(() => {
      slot.pending -= 1;
    });
    slot.queue = result.catch(() => {});
    return result;
  }

  #fitsCallTimeout(client) {
    const clientMs = client.timeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS;
    if (clientMs + LEASE_MARGIN_MS >= this.#callTimeoutMs) {
      throw new ConfigError('config', `configuration: the client's timeoutMs (${clientMs} ms) plus the ${LEASE_MARGIN_MS} ms lease margin must be below the call timeout (${this.#callTimeoutMs} ms)`, { detail: 'client timeout does not fit the call timeout' });
    }
  }

  /** Runs a TLS-instance export on this thread; a trap replaces the instance. */
  #tlsCall(f) {
    if (this.#closed) {
      throw new Error('this GatewayAuth is closed');
    }
    try {
      return f(this.#tls.tlsCache);
    } catch (e) {
      const payload = payloadOf(e);
      if (payload) throw tlsError(payload);
      this.#recoveries += 1;
      this.#tls = null;
      throw new TrapError('trap', `the TLS instance trapped: ${e.message}; it is replaced at the next call`);
    }
  }

  async #tlsInstance() {
    if (!this.#tls) {
      this.#tls = await this.#newTls();
    }
    return this.#tls;
  }

  /** Sets the cache capacity and TTL of both instances (replayed after a recovery). */
  async configure(cacheSettings) {
    const wit = convert.settings(cacheSettings);
    await this.#tlsInstance();
    this.#tlsCall((c) => c.configure(wit));
    this.#cache = wit;
    this.#cacheRevision += 1;
    // Each OAuth instance takes the settings before its next call.
    await Promise.all(this.#slots.map((slot) => this.#oauth('tlsCache', 'stats', [], undefined, slot)));
  }

  /** Validates and caches trust material for upstream sessions; resolves its profile. */
  async prepare(trust) {
    await this.#tlsInstance();
    return convert.profile(this.#tlsCall((c) => c.prepare(convert.trustSpec(trust))));
  }

  /**
   * The profile prepared under `id`, from the cache (a hit, as `prepare` of its spec
   * would be), without sending the material again; rejects with `unknown-profile` once
   * it was evicted or expired.
   */
  async lookup(id) {
    await this.#tlsInstance();
    return convert.profile(this.#tlsCall((c) => c.lookupProfile(id)));
  }

  /** Drops one cached profile; resolves whether there was one. */
  async invalidate(id) {
    await this.#tlsInstance();
    return this.#tlsCall((c) => c.invalidate(id));
  }

  /** Drops every cached profile of both instances (a certificate reload). */
  async clear() {
    await this.#tlsInstance();
    this.#tlsCall((c) => c.clear());
    this.#clearRevision += 1;
    await Promise.all(this.#slots.map((slot) => this.#oauth('tlsCache', 'stats', [], undefined, slot)));
  }

  /** The upstream cache's counters (numbers), size and capacity. */
  async stats() {
    await this.#tlsInstance();
    return convert.stats(this.#tlsCall((c) => c.stats()));
  }

  /** Both instances' figures: `{ upstream, oauth }`, each the WIT `plugin-metrics`. */
  async metrics() {
    const tls = await this.#tlsInstance();
    const oauth = await Promise.all(this.#slots.map((slot) => this.#oauth('metrics', 'snapshot', [], undefined, slot)));
    return {
      upstream: convert.metrics(tls.metrics.snapshot()),
      oauth: convert.metrics(oauth[0]),
      oauthWorkers: oauth.map(convert.metrics),
    };
  }

  /**
   * How to authorize for the protected resource at `resourceUrl` (RFC 9728): from the
   * `resource_metadata` of its challenge (`wwwAuthenticate`: the `WWW-Authenticate`
   * field lines of its 401 or 403, possibly none; one string is one line), else its
   * well-known metadata, then its authorization server's metadata, which must offer
   * PKCE `S256`. `trust` is the TLS trust of both servers; documents are cached for 15
   * minutes.
   */
  async discoverResource(resourceUrl, wwwAuthenticate, trust) {
    const args = [resourceUrl, convert.headerLines(wwwAuthenticate), convert.trustSpec(trust)];
    return convert.resourceAuthorization(await this.#oauth('oauth', 'discoverResource', args));
  }

  /**
   * Registers a client dynamically (RFC 7591), once per issuer and redirect URIs for
   * every replica sharing the store: the first caller registers under a lease while
   * the others wait for its result, kept in the store (secret included). With a client
   * ID metadata document URL and a server that takes one, that URL is the client id.
   */
  async registerClient(request) {
    return convert.registration(await this.#oauth('oauth', 'registerClient', [convert.registrationRequest(request)]));
  }

  /** One token request, no session. */
  async requestToken(client, grant) {
    const c = convert.client(client);
    this.#fitsCallTimeout(c);
    return convert.token(await this.#oauth('oauth', 'requestToken', [c, convert.grant(grant)]));
  }

  /** Opens (or replaces) session `key`; nothing is requested yet. */
  async openSession(key, client, grant) {
    const c = convert.client(client);
    this.#fitsCallTimeout(c);
    const g = convert.sessionGrant(grant);
    await this.#oauth('oauth', 'openSession', [key, c, g], key);
    this.#sessions.set(key, [c, g]);
  }

  /** The session's access token: cached, renewed ahead of expiry. */
  async accessToken(key) {
    return convert.token(await this.#oauth('oauth', 'accessToken', [key], key));
  }

  /**
   * A token other than `rejected` (an access token of the session an upstream refused
   * although it looked valid, a 401 with `invalid_token`): while the session holds it,
   * it is dropped (in the store too) and the session renews under the lease; a token
   * another caller or replica obtained meanwhile is returned.
   */
  async renewToken(key, rejected) {
    const token = typeof rejected === 'string' ? rejected : rejected?.accessToken;
    if (typeof token !== 'string') {
      throw new TypeError('renewToken needs the rejected access token (a string or a Token)');
    }
    return convert.token(await this.#oauth('oauth', 'renewToken', [key, token], key));
  }

  /** Starts an authorization-code flow: `{ url, state, expiresAt }`. */
  async beginAuthorization(key) {
    return convert.authorization(await this.#oauth('oauth', 'beginAuthorization', [key], key));
  }

  /**
   * Starts a new authorization of session `key` for its scopes and those a resource's
   * 403 `insufficient_scope` challenge names (`wwwAuthenticate`: its field lines), as
   * `beginAuthorization` does; the session serves its current token until
   * `completeAuthorization`. Another challenge is a ConfigError.
   */
  async beginStepUp(key, wwwAuthenticate) {
    const lines = convert.headerLines(wwwAuthenticate);
    return convert.authorization(await this.#oauth('oauth', 'beginStepUp', [key, lines], key));
  }

  /**
   * A DPoP proof (RFC 9449) for the gateway's `method` request to `url` with session
   * `key`'s access token, signed with the session's key; `nonce` is the resource
   * server's `DPoP-Nonce` when it asked for one. Send it as the `DPoP` header, with
   * `Authorization: DPoP <token>`.
   */
  async dpopProof(key, method, url, nonce) {
    return this.#oauth('oauth', 'dpopProof', [key, method, url, nonce ?? undefined], key);
  }

  /** Completes it with what the redirect carried (`iss` per RFC 9207, if sent). */
  async completeAuthorization(key, state, code, iss) {
    return convert.token(await this.#oauth('oauth', 'completeAuthorization', [key, state, code, iss ?? undefined], key));
  }

  /** Starts a device authorization (RFC 8628). */
  async beginDeviceAuthorization(key) {
    return convert.deviceAuthorization(await this.#oauth('oauth', 'beginDeviceAuthorization', [key], key));
  }

  /** Polls once: the token, or null while the user has not finished. */
  async pollDeviceAuthorization(key) {
    const t = await this.#oauth('oauth', 'pollDeviceAuthorization', [key], key);
    return t ? convert.token(t) : null;
  }

  /** The session's state, or null when there is no session under `key`. */
  async sessionStatus(key) {
    return convert.sessionState(await this.#oauth('oauth', 'sessionStatus', [key], key));
  }

  /** Revokes the session's tokens (RFC 7009) and forgets them. */
  async revoke(key) {
    await this.#oauth('oauth', 'revoke', [key], key);
  }

  /** Forgets the session, here and in the store. */
  async closeSession(key) {
    await this.#oauth('oauth', 'closeSession', [key], key);
    this.#sessions.delete(key);
  }

  /** Forgets the session in this plugin only; the store's record is kept. */
  async forgetSession(key) {
    await this.#oauth('oauth', 'forgetSession', [key], key);
    this.#sessions.delete(key);
  }

  /** A socket to `host`:`port` under the egress policy (what upstream streams use). */
  dial(host, port, timeoutMs) {
    return this.#io.dial(host, port, timeoutMs);
  }

  /** A TLS session for an upstream, before any socket: `{ advance, close, info }` over
   * the plugin's `tls-session` (sans-IO). Most callers want `connect`. */
  async tlsSession(trust, serverName, alpn = []) {
    const tls = await this.#tlsInstance();
    const spec = convert.trustSpec(trust);
    const open = (id) => tls.tlsCache.connect(id, serverName, alpn);
    try {
      let id = this.#tlsCall((c) => c.prepare(spec)).id;
      try {
        return open(id);
      } catch (e) {
        if (payloadOf(e)?.tag !== 'unknown-profile') throw e;
        // Evicted between prepare and connect: prepare again.
        id = this.#tlsCall((c) => c.prepare(spec)).id;
        return open(id);
      }
    } catch (e) {
      const payload = payloadOf(e);
      if (payload) throw tlsError(payload);
      throw e;
    }
  }

  /**
   * A `stream.Duplex` of plaintext to `host`:`port` over TLS with `trust` (CA bundle,
   * client certificate for mutual TLS): options `{ host, port, trust, servername, alpn,
   * timeoutMs }`. The destination must pass the egress policy, as the plugin's own
   * connections do (a refusal is a TransportError `denied`); resolution, the connect
   * and the handshake share `timeoutMs`. It emits `secureConnect` when the handshake
   * ends.
   */
  connect(options) {
    return new TlsStream(this, options);
  }

  /** A `createConnection` for `https.request` / `http.Agent` that reaches upstreams
   * through `connect` with this trust. */
  createConnection(trust, defaults = {}) {
    // The stream is returned at once (callers write to it before the handshake ends);
    // the callback is left to the caller's own guard, as net.createConnection does.
    return (options) => this.connect({
      ...defaults,
      host: options.host ?? options.hostname,
      port: Number(options.port ?? 443),
      servername: options.servername,
      alpn: defaults.alpn ?? ['http/1.1'],
      trust,
    });
  }

  /** A `connect` for undici (`new Agent({ connect: auth.undiciConnect(trust) })`):
   * its connections are upstream streams with this trust, offering `alpn`
   * (default HTTP/1.1 only). */
  undiciConnect(trust, { alpn = ['http/1.1'], timeoutMs } = {}) {
    return (options, callback) => {
      const stream = this.connect({
        host: options.hostname ?? options.host,
        port: Number(options.port || (options.protocol === 'http:' ? 80 : 443)),
        servername: options.servername || undefined,
        alpn,
        trust,
        timeoutMs,
      });
      const onError = (e) => callback(e, null);
      stream.once('error', onError);
      stream.once('secureConnect', () => {
        stream.removeListener('error', onError);
        callback(null, stream);
      });
    };
  }

  /** An `https.Agent`-compatible agent (keep-alive by default) whose connections are
   * upstream streams with this trust. */
  agent(trust, agentOptions = {}) {
    return upstreamAgent(this, trust, agentOptions);
  }

  /** Stops the worker and closes the plugin's connections (and a store it opened). */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    // A call under way ends now (its worker is stopped), not at its deadline.
    for (const slot of this.#slots) {
      if (slot.starting) await slot.starting.catch(() => {});
      if (slot.worker) await slot.worker.terminate();
      slot.worker = null;
    }
    await Promise.all(this.#slots.map((slot) => slot.queue));
    this.#io.closeAll();
  }
}
