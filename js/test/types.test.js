// The typings: index.d.ts declares every runtime export, and a TypeScript gateway's
// use of the package type-checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as api from '../src/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));

test('index.d.ts declares every export of the package', () => {
  const typings = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8');
  for (const name of Object.keys(api)) {
    assert.match(typings, new RegExp(`export (declare )?(class|function|const) ${name}\\b`), `${name} is not declared`);
  }
});

test('a TypeScript gateway using the package type-checks against index.d.ts', () => {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  try {
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
      '--target', 'es2022', '--types', 'node', 'test/types/usage.ts'], { cwd: root, encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc found errors:\n${e.stdout}${e.stderr}`);
  }
});
