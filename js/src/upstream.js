// Upstream TLS streams: a `stream.Duplex` of plaintext over a `net.Socket`, with the
// TLS done by the plugin's sans-IO `tls-session` (configured from the cached profile of
// the upstream's trust material, resumption included). Each socket event is one
// `advance` call on this thread; nothing blocks. Usable as `createConnection` for
// `https.request` and behind an `https.Agent`.
import { Agent } from 'node:https';
import { Duplex } from 'node:stream';
import { TlsError, oauthError, tlsError } from './errors.js';

const transportError = (netError) => oauthError({ tag: 'transport', val: netError });

// The WIT's bound on each of `incoming` and `plaintext` per `advance`.
const MAX_ADVANCE = 1024 * 1024;
// Plaintext encrypted per `advance` of a large write (four full TLS records).
const WRITE_SLICE = 64 * 1024;
const EMPTY = new Uint8Array(0);
const dispose = Symbol.dispose ?? Symbol.for('dispose');

const asBuffer = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);

function payloadOf(e) {
  return e && Object.prototype.hasOwnProperty.call(e, 'payload') ? e.payload : null;
}

/** A plaintext stream to an upstream over the plugin's TLS. */
export class TlsStream extends Duplex {
  constructor(plugin, { host, port = 443, trust, servername, alpn = [], timeoutMs = 10000 } = {}) {
    super({ allowHalfOpen: true });
    this.encrypted = true;
    this.authorized = false;
    this.alpnProtocol = false;
    this.servername = servername || host;
    this.session = null;
    this.negotiated = null;
    this.backpressured = false;
    this.yielding = false;
    this.state = 'connecting';
    this.pendingWrites = [];
    // The socket comes once the egress policy allowed the destination and it answered.
    this.socket = null;
    this.handshakeTimer = setTimeout(() => {
      if (this.state !== 'open') {
        this.destroy(Object.assign(new Error(`TLS connection to ${host}:${port} not established within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      }
    }, timeoutMs);
    this.handshakeTimer.unref();
    const opened = Date.now();
    plugin.tlsSession(trust, this.servername, alpn).then(async (session) => {
      if (this.destroyed) {
        session[dispose]();
        return;
      }
      this.session = session;
      let socket;
      try {
        socket = await plugin.dial(host, port, timeoutMs - (Date.now() - opened));
      } catch (e) {
        this.destroy(e && e.tag ? transportError(e) : e);
        return;
      }
      if (this.destroyed) {
        socket.destroy();
        return;
      }
      this.#attach(socket);
      this.state = 'handshaking';
      this.#advance(EMPTY, EMPTY);
    }, (e) => this.destroy(e));
  }

  #attach(socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    if (this.timeoutMs !== undefined) socket.setTimeout(this.timeoutMs);
    if (this.keepAlive) socket.setKeepAlive(...this.keepAlive);
    if (this.unreferenced) socket.unref();
    socket.on('error', (e) => this.destroy(e));
    socket.on('timeout', () => this.emit('timeout'));
    socket.on('end', () => this.#onSocketEnd());
    socket.on('close', () => {
      if (!this.destroyed) this.#onSocketEnd();
    });
    socket.on('data', (chunk) => this.#onData(chunk));
  }

  get connecting() {
    return this.state === 'connecting';
  }

  get remoteAddress() {
    return this.socket?.remoteAddress;
  }

  get remotePort() {
    return this.socket?.remotePort;
  }

  get localAddress() {
    return this.socket?.localAddress;
  }

  get localPort() {
    return this.socket?.localPort;
  }

  address() {
    return this.socket ? this.socket.address() : {};
  }

  setNoDelay() {
    // Always on: TLS records are written whole.
    return this;
  }

  setKeepAlive(enable, delay) {
    this.keepAlive = [enable, delay];
    this.socket?.setKeepAlive(enable, delay);
    return this;
  }

  setTimeout(ms, callback) {
    this.timeoutMs = ms;
    this.socket?.setTimeout(ms);
    if (callback) this.once('timeout', callback);
    return this;
  }

  ref() {
    this.unreferenced = false;
    this.socket?.ref();
    return this;
  }

  unref() {
    this.unreferenced = true;
    this.socket?.unref();
    return this;
  }

  /** What the session negotiated: `{ alpn, version, cipherSuite, resumed }`. */
  info() {
    if (!this.session) return this.negotiated ?? null;
    const i = this.session.info();
    return { alpn: i.alpn ?? null, version: i.version ?? null, cipherSuite: i.cipherSuite ?? null, resumed: i.resumed };
  }

  getProtocol() {
    return this.info()?.version ?? null;
  }

  isSessionReused() {
    return this.info()?.resumed ?? false;
  }

  /** Feeds ciphertext and plaintext through the session and writes what it produces.
   * Returns the socket write's flush promise-callback target, or false on failure. */
  #advance(incoming, plaintext, callback) {
    let output;
    try {
      output = this.session.advance(incoming, plaintext);
    } catch (e) {
      const payload = payloadOf(e);
      this.destroy(payload ? tlsError(payload) : e);
      if (callback) callback();
      return;
    }
    if (output.outgoing.length) {
      this.socket.write(asBuffer(output.outgoing), callback);
    } else if (callback) {
      callback();
    }
    if (output.plaintext.length && !this.readableEnded) {
      if (!this.push(asBuffer(output.plaintext))) {
        this.backpressured = true;
        this.socket.pause();
      }
    }
    const previous = this.state;
    this.state = output.state;
    if (previous === 'handshaking' && output.state !== 'handshaking' && output.state !== 'closed') {
      clearTimeout(this.handshakeTimer);
      const info = this.info();
      this.negotiated = info;
      this.authorized = true;
      this.alpnProtocol = info.alpn ?? false;
      this.emit('secureConnect');
      this.emit('connect');
      for (const [chunk, cb] of this.pendingWrites.splice(0)) this.#send(chunk, cb);
    }
    if (output.state === 'peer-closed' || output.state === 'closed') {
      // After close_notify nothing more arrives.
      if (!this.readableEnded) this.push(null);
    }
  }

  #onData(chunk) {
    if (!this.session || this.state === 'closed') return;
    for (let at = 0; at < chunk.length; at += MAX_ADVANCE) {
      this.#advance(chunk.subarray(at, at + MAX_ADVANCE), EMPTY);
      if (this.destroyed) return;
    }
    // The socket may hand over many chunks in one turn of the loop (libuv reads on
    // while data is there); decrypting them all at once would hold the loop. One
    // chunk per turn.
    if (!this.yielding) {
      this.yielding = true;
      this.socket.pause();
      setImmediate(() => {
        this.yielding = false;
        if (!this.backpressured && this.socket && !this.destroyed) this.socket.resume();
      });
    }
  }

  #onSocketEnd() {
    if (!this.readableEnded && !this.destroyed) {
      if (this.state === 'handshaking' || this.state === 'connecting') {
        this.destroy(new TlsError('protocol', `the upstream closed the connection during the TLS handshake`, { detail: 'connection closed during the handshake' }));
        return;
      }
      this.push(null);
    }
  }

  // Large writes go through the session a slice at a time, the next slice once the
  // socket took the previous one's ciphertext, so encrypting megabytes never holds the
  // event loop for more than one slice.
  #send(chunk, callback) {
    if (this.state === 'closed') {
      callback(new TlsError('closed', 'the TLS session is closed', { detail: null }));
      return;
    }
    let at = 0;
    const next = (e) => {
      if (e || this.destroyed || at >= chunk.length) {
        callback(e ?? (this.destroyed && at < chunk.length ? new TlsError('closed', 'the TLS session is closed', { detail: null }) : null));
        return;
      }
      const part = chunk.subarray(at, at + WRITE_SLICE);
      at += part.length;
      // setImmediate: a socket write that completes at once calls back in the same
      // turn; the next slice waits for the loop's next turn instead.
      this.#advance(EMPTY, part, (e) => setImmediate(next, e));
    };
    if (chunk.length === 0) {
      callback();
      return;
    }
    next();
  }

  _write(chunk, encoding, callback) {
    if (this.state !== 'open' && this.state !== 'peer-closed') {
      this.pendingWrites.push([chunk, callback]);
      return;
    }
    this.#send(chunk, callback);
  }

  // The HTTP head and body in one record and one socket write: two small writes
  // would meet Nagle and delayed ACK (a ~40 ms stall per request).
  _writev(chunks, callback) {
    const chunk = chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this._write(chunk, null, callback);
  }

  _read() {
    this.backpressured = false;
    if (!this.yielding && this.socket?.isPaused()) this.socket.resume();
  }

  // Ending the writable side sends nothing: TLS has no half-close a server would
  // honour before it answers; close_notify goes out when the stream is destroyed.
  _final(callback) {
    callback();
  }

  _destroy(error, callback) {
    clearTimeout(this.handshakeTimer);
    if (this.session) {
      if (this.state === 'open' || this.state === 'peer-closed') {
        try {
          const bye = this.session.close();
          if (bye.length && this.socket && !this.socket.destroyed) this.socket.end(asBuffer(bye));
        } catch {
          // the session failed already
        }
      }
      this.session[dispose]();
      this.session = null;
    }
    this.state = 'closed';
    if (this.socket && !this.socket.destroyed) {
      this.socket.end();
      this.socket.destroySoon?.();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    }
    callback(error);
  }
}

/** An `https.Agent` whose connections are upstream streams with `trust`. */
export function upstreamAgent(plugin, trust, options = {}) {
  const agent = new Agent({ keepAlive: true, ...options });
  const create = plugin.createConnection(trust, { timeoutMs: options.timeoutMs });
  agent.createConnection = (opts, callback) => create(opts, callback);
  return agent;
}
