// Loading the transpiled component (build/, made by `npm run build`): its core modules
// are compiled once per thread and shared by every instance made in that thread.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { cli, clocks, io, random } from '@bytecodealliance/preview2-shim';

const BUILD = new URL('../build/', import.meta.url);

let modules = null;

/** The compiled core modules by file name (`WebAssembly.Module`s may be posted to a
 * worker, so the OAuth worker reuses the main thread's compilation). */
export function coreModules() {
  if (!modules) {
    modules = (async () => {
      const names = ['gateway_auth.core.wasm', 'gateway_auth.core2.wasm',
        'gateway_auth.core3.wasm', 'gateway_auth.core4.wasm'];
      const compiled = await Promise.all(names.map(async (name) => {
        let bytes;
        try {
          bytes = await readFile(new URL(name, BUILD));
        } catch (e) {
          throw new Error(`the transpiled component is missing (${fileURLToPath(new URL(name, BUILD))}): run \`npm run build\` in js/`, { cause: e });
        }
        return [name, await WebAssembly.compile(bytes)];
      }));
      return Object.fromEntries(compiled);
    })();
  }
  return modules;
}

/** Uses modules compiled elsewhere (posted from the main thread). */
export function useCoreModules(compiled) {
  modules = Promise.resolve(compiled);
}

/** A fresh instance with `transport` and `store` supplied by the caller and the WASI
 * clocks, randomness and standard streams from preview2-shim; its `memoryBytes()`
 * tells how much linear memory it holds. */
export async function instantiate({ transport, store }) {
  const compiled = await coreModules();
  const { instantiate: make } = await import(new URL('gateway_auth.js', BUILD));
  const memories = [];
  const instantiateCore = async (module, imports) => {
    const made = await WebAssembly.instantiate(module, imports);
    const { memory } = made.exports;
    if (memory instanceof WebAssembly.Memory) memories.push(memory);
    return made;
  };
  const plugin = await make((name) => compiled[name], {
    'gateway:auth/transport': transport,
    'gateway:auth/store': store,
    'gateway:auth/types': {},
    'wasi:cli/environment': cli.environment,
    'wasi:cli/exit': cli.exit,
    'wasi:cli/stderr': cli.stderr,
    'wasi:cli/stdin': cli.stdin,
    'wasi:cli/stdout': cli.stdout,
    'wasi:cli/terminal-input': cli.terminalInput,
    'wasi:cli/terminal-output': cli.terminalOutput,
    'wasi:cli/terminal-stderr': cli.terminalStderr,
    'wasi:cli/terminal-stdin': cli.terminalStdin,
    'wasi:cli/terminal-stdout': cli.terminalStdout,
    'wasi:clocks/monotonic-clock': clocks.monotonicClock,
    'wasi:clocks/wall-clock': clocks.wallClock,
    'wasi:io/error': io.error,
    'wasi:io/poll': io.poll,
    'wasi:io/streams': io.streams,
    'wasi:random/insecure-seed': random.insecureSeed,
    'wasi:random/random': random.random,
  }, instantiateCore);
  // The bytes of linear memory the instance holds now (it only grows).
  plugin.memoryBytes = () => memories.reduce((sum, m) => sum + m.buffer.byteLength, 0);
  return plugin;
}
