import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EgressPolicy, isPublic } from '../src/egress.js';

const TABLE = new URL('../../testdata/egress_addresses.txt', import.meta.url);

test('every address of the shared egress table gets its verdict (public or special-purpose)', () => {
  let checked = 0;
  for (const raw of readFileSync(TABLE, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [address, verdict] = line.split(/\s+/);
    assert.ok(verdict === 'public' || verdict === 'special', `${address}: unknown verdict ${verdict}`);
    assert.equal(isPublic(address), verdict === 'public', line);
    // A policy of "*" dials exactly the public ones.
    const refusal = new EgressPolicy(['*']).checkAddress(address, 443);
    assert.equal(refusal === null, verdict === 'public', line);
    checked += 1;
  }
  assert.ok(checked > 50, `${checked} cases`);
});

test('names match exactly or below a wildcard suffix, and ports when given', () => {
  const p = new EgressPolicy(['auth.example.com:443', '*.idp.test']);
  assert.equal(p.checkName('auth.example.com', 443), null);
  assert.equal(p.checkName('AUTH.example.com.', 443), null);
  assert.notEqual(p.checkName('auth.example.com', 8443), null);
  assert.notEqual(p.checkName('evil-auth.example.com', 443), null);
  assert.equal(p.checkName('a.idp.test', 1), null);
  assert.notEqual(p.checkName('idp.test', 1), null);
  assert.notEqual(p.checkName('aidp.test', 1), null);
});

test('private addresses need an address rule even behind an allowed name', () => {
  const p = new EgressPolicy(['auth.example.com']);
  for (const ip of ['10.0.0.1', '127.0.0.1', '169.254.169.254', '192.168.1.1', '::1', 'fe80::1', 'fd00::1', '100.64.0.1', '::ffff:10.0.0.1']) {
    assert.notEqual(p.checkAddress(ip, 443), null, ip);
  }
  assert.equal(p.checkAddress('93.184.216.34', 443), null);
  const q = new EgressPolicy(['127.0.0.1', '10.0.0.0/8:8443']);
  assert.equal(q.checkAddress('127.0.0.1', 1), null);
  assert.equal(q.checkAddress('::ffff:127.0.0.1', 1), null);
  assert.equal(q.checkAddress('10.9.9.9', 8443), null);
  assert.notEqual(q.checkAddress('10.9.9.9', 443), null);
});

test('ip literals are matched by address rules, not by names', () => {
  assert.notEqual(new EgressPolicy(['localhost']).checkName('127.0.0.1', 443), null);
  const p = new EgressPolicy(['[::1]:8443', '127.0.0.1']);
  assert.equal(p.checkName('::1', 8443), null);
  assert.equal(p.checkName('[::1]', 8443), null);
  assert.equal(p.checkName('127.0.0.1', 9), null);
  assert.notEqual(p.checkName('127.0.0.2', 9), null);
});

test('a policy with no rules allows nothing, and malformed rules are refused naming the rule', () => {
  assert.notEqual(new EgressPolicy([]).checkName('example.com', 443), null);
  for (const bad of ['', 'a.com:http', '10.0.0.0/33', 'auth.*.com', '[::1:443']) {
    assert.throws(() => new EgressPolicy([bad]), /egress rule/, bad);
  }
});
