// The OAuth instance's thread. The plugin's imports are synchronous and Node's sockets
// are not, so every `transport` and `store` call is posted to the gateway's thread,
// which does the work on its event loop, and this thread blocks on `Atomics.wait` until
// the answer is there (or the operation's timeout, plus a margin, has passed). Calls
// into the plugin arrive as messages and are answered one at a time.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { instantiate, useCoreModules } from './component.js';

const { modules, signalBuffer, port, storeWaitMs, memoryLimitBytes } = workerData;
const signal = new Int32Array(signalBuffer);
// How much longer than an operation's own timeout this thread waits for the gateway's
// thread to answer it (a busy event loop) before answering `timeout` itself.
const MARGIN_MS = 1000;
const dispose = Symbol.dispose ?? Symbol.for('dispose');

let sequence = 0;

/** Posts one operation to the gateway's thread and blocks until its answer. */
function ask(op, args, waitMs) {
  const id = ++sequence;
  Atomics.store(signal, 0, 0);
  port.postMessage({ id, op, args });
  const deadline = Date.now() + waitMs;
  for (;;) {
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      if (m.message.id === id) {
        return m.message;
      }
      // An answer to an operation given up on earlier: dropped.
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      return null;
    }
    Atomics.wait(signal, 0, 0, left);
    Atomics.store(signal, 0, 0);
  }
}

function netCall(op, args, timeoutMs) {
  const answer = ask(op, args, timeoutMs + MARGIN_MS);
  if (answer === null) {
    throw { tag: 'timeout' };
  }
  if ('err' in answer) {
    throw answer.err;
  }
  return answer.ok;
}

class Connection {
  constructor(id) {
    this.id = id;
  }

  write(bytes, timeoutMs) {
    netCall('write', [this.id, bytes, timeoutMs], timeoutMs);
  }

  read(max, timeoutMs) {
    return netCall('read', [this.id, max, timeoutMs], timeoutMs);
  }

  [dispose]() {
    port.postMessage({ id: 0, op: 'close', args: [this.id] });
  }
}

const transport = {
  Connection,
  connect(host, portNumber, timeoutMs) {
    return new Connection(netCall('connect', [host, portNumber, timeoutMs], timeoutMs));
  },
};

function storeCall(op, args) {
  const answer = ask(op, args, storeWaitMs);
  if (answer === null) {
    throw `the store did not answer within ${storeWaitMs} ms`;
  }
  if ('bug' in answer) {
    throw new TypeError(answer.bug);
  }
  if ('err' in answer) {
    throw String(answer.err);
  }
  return answer.ok;
}

const store = {
  get(key) {
    const value = storeCall('get', [key]);
    return value === undefined || value === null ? {} : { value };
  },
  compareAndSwap(key, expected, value) {
    return storeCall('cas', [key, expected, value]);
  },
};

useCoreModules(modules);
const plugin = await instantiate({ transport, store });

// A call's answer: `ok` with the value, `err` with the WIT error payload, or `trap`
// when the plugin (or a host import) failed in a way that leaves the instance unusable.
parentPort.on('message', ({ id, iface, method, args }) => {
  let answer;
  try {
    answer = { id, ok: plugin[iface][method](...args) };
    // WebAssembly memory cannot be capped once the core module declared it: an
    // instance that grew past the limit is answered as a trap and replaced.
    const bytes = plugin.memoryBytes();
    if (bytes > memoryLimitBytes) {
      answer = { id, trap: `the instance holds ${bytes} bytes of memory, over the limit of ${memoryLimitBytes}` };
    }
  } catch (e) {
    if (e && Object.prototype.hasOwnProperty.call(e, 'payload')) {
      answer = { id, err: e.payload };
    } else {
      answer = { id, trap: String(e && e.message ? e.message : e) };
    }
  }
  parentPort.postMessage(answer);
});
parentPort.postMessage({ ready: true });
