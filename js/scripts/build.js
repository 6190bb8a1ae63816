// Transpiles the committed component (host/component/gateway_auth.wasm) into
// build/: an ES module with an `instantiate` function (jco's instantiation mode, so one
// process can hold several instances, each with its own imports) and its core modules.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const component = join(root, '..', 'host', 'component', 'gateway_auth.wasm');
const out = join(root, 'build');
const jco = join(root, 'node_modules', '@bytecodealliance', 'jco', 'src', 'jco.js');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
execFileSync(process.execPath, [
  jco, 'transpile', component,
  '--out-dir', out,
  '--name', 'gateway_auth',
  '--instantiation', 'async',
  '--no-namespaced-exports',
  '--quiet',
], { stdio: 'inherit' });
const size = statSync(join(out, 'gateway_auth.core.wasm')).size;
console.log(`build/gateway_auth.js transpiled from host/component/gateway_auth.wasm (core module ${size} bytes)`);
