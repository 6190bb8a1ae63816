// The socket side of the `transport` import, run on the gateway's event loop: the
// OAuth worker asks for connect, read, write and close, blocked on its side while this
// side does the work asynchronously. Every operation ends within the timeout the plugin
// gave it; a net-error is answered as the WIT `net-error` variant ({ tag, val }).
import { lookup } from 'node:dns/promises';
import { Socket } from 'node:net';
import { parseAddress } from './egress.js';

const MAX_READ = 64 * 1024;
// How much a connection buffers before pausing the socket (the plugin reads what it
// needs; a server pushing more waits).
const HIGH_WATER = 256 * 1024;

const netError = (tag, val) => (val === undefined ? { tag } : { tag, val });

function fromSocketError(e, host, port) {
  switch (e.code) {
    case 'ECONNRESET':
    case 'ECONNABORTED':
    case 'EPIPE':
      return netError('reset', `${host}:${port}: ${e.message}`);
    case 'ETIMEDOUT':
      return netError('timeout');
    default:
      return netError('other', `${host}:${port}: ${e.message}`);
  }
}

function withDeadline(promise, ms, onTimeout) {
  let timer;
  return Promise.race([
    promise,
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(onTimeout()), Math.max(0, ms));
    }),
  ]).finally(() => clearTimeout(timer));
}

/** One TCP stream opened for the plugin. */
class Connection {
  constructor(socket, label) {
    this.socket = socket;
    this.label = label;
    this.chunks = [];
    this.buffered = 0;
    this.ended = false;
    this.error = null;
    this.waiter = null;
    socket.on('data', (chunk) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered > HIGH_WATER) {
        socket.pause();
      }
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (e) => {
      this.error = e;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  wake() {
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter) waiter();
  }

  take(max) {
    const limit = Math.max(1, Math.min(max, MAX_READ));
    const parts = [];
    let size = 0;
    while (this.chunks.length && size < limit) {
      const chunk = this.chunks[0];
      const want = limit - size;
      if (chunk.length <= want) {
        parts.push(chunk);
        size += chunk.length;
        this.chunks.shift();
      } else {
        parts.push(chunk.subarray(0, want));
        this.chunks[0] = chunk.subarray(want);
        size += want;
      }
    }
    this.buffered -= size;
    if (this.buffered <= HIGH_WATER && this.socket.isPaused()) {
      this.socket.resume();
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
  }

  async read(max, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.chunks.length) {
        return this.take(max);
      }
      if (this.error) {
        throw fromSocketError(this.error, ...this.label);
      }
      if (this.ended) {
        return new Uint8Array(0);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw netError('timeout');
      }
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async write(bytes, timeoutMs) {
    if (this.error) {
      throw fromSocketError(this.error, ...this.label);
    }
    if (this.socket.destroyed || this.socket.writableEnded) {
      throw netError('closed');
    }
    try {
      await withDeadline(new Promise((resolve, reject) => {
        this.socket.write(bytes, (e) => (e ? reject(e) : resolve()));
      }), timeoutMs, () => netError('timeout'));
    } catch (e) {
      if (e && e.tag) {
        // Part of the bytes may have left: the stream is unusable (as the WIT says).
        this.socket.destroy();
        throw e;
      }
      throw fromSocketError(e, ...this.label);
    }
  }

  close() {
    this.socket.destroy();
  }
}

function dial(address, port, ms) {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
    }, Math.max(1, ms));
    socket.once('error', (e) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    });
    socket.connect({ host: address, port, noDelay: true }, () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/**
 * Opens streams under an egress policy: the name is checked before it is resolved, and
 * every resolved address before it is dialled; resolution and every connection
 * attempt share one deadline. `resolve` may be replaced (tests).
 */
export class Io {
  constructor(policy, { resolve } = {}) {
    this.policy = policy;
    this.resolve = resolve ?? (async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address));
    this.connections = new Map();
    this.nextId = 1;
    this.opened = 0;
  }

  /** Checks, resolves, checks again and dials the first allowed address that answers,
   * all within `timeoutMs`; resolves the connected socket (TCP_NODELAY set), rejects
   * with a WIT `net-error`. */
  async dial(host, port, timeoutMs) {
    const deadline = Date.now() + Math.max(1, timeoutMs);
    const denied = this.policy.checkName(host, port);
    if (denied) {
      throw netError('denied', denied);
    }
    const bare = host.replace(/^\[/, '').replace(/\]$/, '');
    let addresses;
    if (parseAddress(bare)) {
      addresses = [bare];
    } else {
      try {
        addresses = await withDeadline(this.resolve(bare, port), deadline - Date.now(), () => netError('timeout'));
      } catch (e) {
        if (e && e.tag) throw e;
        throw netError('resolve', `${bare}: ${e.code ?? e.message}`);
      }
    }
    let refusal = null;
    let lastError = null;
    for (const address of addresses) {
      const why = this.policy.checkAddress(address, port);
      if (why) {
        refusal = `${host}: ${why}`;
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw netError('timeout');
      }
      try {
        const socket = await dial(address, port, left);
        this.opened += 1;
        return socket;
      } catch (e) {
        lastError = e;
      }
    }
    if (lastError && lastError.code === 'ETIMEDOUT') throw netError('timeout');
    if (lastError) throw netError('connect', `${host}:${port}: ${lastError.code ?? lastError.message}`);
    if (refusal) throw netError('denied', refusal);
    throw netError('resolve', `${host}: no addresses`);
  }

  /** `dial`, kept under an id for the plugin's `read`, `write` and `close`. */
  async connect(host, port, timeoutMs) {
    const socket = await this.dial(host, port, timeoutMs);
    const id = this.nextId++;
    this.connections.set(id, new Connection(socket, [host, port]));
    return id;
  }

  connection(id) {
    const c = this.connections.get(id);
    if (!c) throw netError('closed');
    return c;
  }

  read(id, max, timeoutMs) {
    return this.connection(id).read(max, timeoutMs);
  }

  write(id, bytes, timeoutMs) {
    return this.connection(id).write(bytes, timeoutMs);
  }

  close(id) {
    const c = this.connections.get(id);
    if (c) {
      this.connections.delete(id);
      c.close();
    }
  }

  closeAll() {
    for (const id of [...this.connections.keys()]) this.close(id);
  }
}
