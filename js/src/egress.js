// The egress policy: which destinations the plugin may open connections to. The same
// rules as the Rust host (host/src/egress): a destination is allowed when a rule matches
// its name (or IP literal) and port, and every address it is actually dialled on is
// public, or allowed by an address rule. The address check runs after name resolution,
// so a public-looking name that resolves to 169.254.169.254 or 10.0.0.1 cannot smuggle a
// request into the private network.
import { isIP } from 'node:net';

/** Parses an IPv4 or IPv6 literal into `{ v: 4 | 6, bits: BigInt }`, or null. */
export function parseAddress(text) {
  const kind = isIP(text);
  if (kind === 4) {
    return { v: 4, bits: v4Bits(text) };
  }
  if (kind === 6) {
    return { v: 6, bits: v6Bits(text) };
  }
  return null;
}

function v4Bits(text) {
  return text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6Bits(text) {
  let address = text.split('%')[0];
  // A trailing dotted IPv4 part is two groups.
  const lastColon = address.lastIndexOf(':');
  if (address.slice(lastColon + 1).includes('.')) {
    const bits = v4Bits(address.slice(lastColon + 1));
    address = `${address.slice(0, lastColon + 1)}${(bits >> 16n).toString(16)}:${(bits & 0xffffn).toString(16)}`;
  }
  const groups = (s) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  let all;
  if (address.includes('::')) {
    const [head, rest] = address.split('::');
    const left = groups(head);
    const right = groups(rest);
    all = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  } else {
    all = groups(address);
  }
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

function within(ip, net, prefix, width) {
  const shift = BigInt(width - prefix);
  return (ip >> shift) === (net >> shift);
}

const v4 = (text) => v4Bits(text);
const v6 = (text) => v6Bits(text);

// IPv4 blocks that are not globally reachable (IANA IPv4 Special-Purpose Address Registry).
const SPECIAL_V4 = [
  [v4('0.0.0.0'), 8], // "this network"
  [v4('10.0.0.0'), 8], // private
  [v4('100.64.0.0'), 10], // shared address space (CGNAT)
  [v4('127.0.0.0'), 8], // loopback
  [v4('169.254.0.0'), 16], // link local
  [v4('172.16.0.0'), 12], // private
  [v4('192.0.0.0'), 24], // IETF protocol assignments (exceptions below)
  [v4('192.0.2.0'), 24], // documentation
  [v4('192.88.99.0'), 24], // deprecated 6to4 relay anycast
  [v4('192.168.0.0'), 16], // private
  [v4('198.18.0.0'), 15], // benchmarking
  [v4('198.51.100.0'), 24], // documentation
  [v4('203.0.113.0'), 24], // documentation
  [v4('224.0.0.0'), 4], // multicast
  [v4('240.0.0.0'), 4], // reserved, and the limited broadcast address
];
// Globally reachable addresses inside those blocks: PCP and TURN anycast.
const GLOBAL_V4 = [v4('192.0.0.9'), v4('192.0.0.10')];

// IPv6 blocks inside 2000::/3 that are not globally reachable.
const SPECIAL_V6 = [
  [v6('2001::'), 23], // IETF protocol assignments, Teredo (exceptions below)
  [v6('2001:db8::'), 32], // documentation
  [v6('3fff::'), 20], // documentation (RFC 9637)
];
// Globally reachable blocks inside 2001::/23.
const GLOBAL_V6 = [
  [v6('2001:1::1'), 128], // port control protocol anycast
  [v6('2001:1::2'), 128], // TURN anycast
  [v6('2001:1::3'), 128], // DNS-SD service registration anycast
  [v6('2001:3::'), 32], // AMT
  [v6('2001:4:112::'), 48], // AS112-v6
  [v6('2001:20::'), 28], // ORCHIDv2
  [v6('2001:30::'), 28], // drone remote ID
];

/** The IPv4 address an IPv6 address delivers to, for the forms that carry one:
 * IPv4-mapped, IPv4-compatible (not `::` or `::1`), NAT64's well-known prefix, 6to4. */
function embeddedV4(bits) {
  const low = bits & 0xffffffffn;
  if (within(bits, 0xffffn << 32n, 96, 128) || within(bits, v6('64:ff9b::'), 96, 128)) {
    return low;
  }
  if (within(bits, 0n, 96, 128) && bits > 1n) {
    return low;
  }
  if (within(bits, 0x2002n << 112n, 16, 128)) {
    return (bits >> 80n) & 0xffffffffn;
  }
  return null;
}

function isPublicV4(bits) {
  if (GLOBAL_V4.includes(bits)) {
    return true;
  }
  return !SPECIAL_V4.some(([net, prefix]) => within(bits, net, prefix, 32));
}

/** Whether an address (text, or `parseAddress`'s result) is globally reachable unicast. */
export function isPublic(address) {
  const ip = typeof address === 'string' ? parseAddress(address) : address;
  if (!ip) {
    throw new TypeError(`not an IP address: ${address}`);
  }
  if (ip.v === 4) {
    return isPublicV4(ip.bits);
  }
  const embedded = embeddedV4(ip.bits);
  if (embedded !== null) {
    return isPublicV4(embedded);
  }
  if (!within(ip.bits, 0x2000n << 112n, 3, 128)) {
    return false;
  }
  return GLOBAL_V6.some(([net, prefix]) => within(ip.bits, net, prefix, 128))
    || !SPECIAL_V6.some(([net, prefix]) => within(ip.bits, net, prefix, 128));
}

/** IPv4-mapped IPv6 addresses as IPv4, as Rust's `IpAddr::to_canonical`. */
function canonical(ip) {
  if (ip.v === 6 && within(ip.bits, 0xffffn << 32n, 96, 128)) {
    return { v: 4, bits: ip.bits & 0xffffffffn };
  }
  return ip;
}

/** Why an egress rule did not parse. */
export class EgressRuleError extends Error {
  constructor(message) {
    super(message);
    this.name = 'EgressRuleError';
    this.code = 'egress-rule';
  }
}

function parseRule(text) {
  const bad = (why) => new EgressRuleError(`egress rule ${JSON.stringify(text)}: ${why}`);
  if (text === '') {
    throw bad('empty');
  }
  // `[v6]:port`, `v4:port`, `name:port`; a bare v6 address has several colons.
  let host;
  let port;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) {
      throw bad('unclosed [');
    }
    host = text.slice(1, close);
    const after = text.slice(close + 1);
    port = after.startsWith(':') ? after.slice(1) : null;
  } else if (text.split(':').length === 2) {
    [host, port] = text.split(':');
  } else {
    host = text;
    port = null;
  }
  if (port === null || port === '*') {
    port = null;
  } else if (/^[0-9]+$/.test(port) && Number(port) <= 65535) {
    port = Number(port);
  } else {
    throw bad('port is not a number');
  }
  host = host.toLowerCase();
  let pattern;
  if (host === '*') {
    pattern = { kind: 'any' };
  } else if (host.includes('/')) {
    const [addr, bits] = host.split('/');
    const ip = parseAddress(addr);
    if (!ip || host.split('/').length !== 2) {
      throw bad('not an address block');
    }
    if (!/^[0-9]+$/.test(bits)) {
      throw bad('prefix length is not a number');
    }
    if (Number(bits) > (ip.v === 4 ? 32 : 128)) {
      throw bad('prefix length too long');
    }
    pattern = { kind: 'network', ip, prefix: Number(bits) };
  } else if (parseAddress(host)) {
    const ip = parseAddress(host);
    pattern = { kind: 'network', ip, prefix: ip.v === 4 ? 32 : 128 };
  } else if (host.startsWith('*.')) {
    const suffix = host.slice(2);
    if (suffix === '' || suffix.includes('*')) {
      throw bad('wildcards are only allowed as a leading `*.`');
    }
    pattern = { kind: 'suffix', suffix };
  } else if (host.includes('*')) {
    throw bad('wildcards are only allowed as a leading `*.`');
  } else {
    pattern = { kind: 'name', name: host.replace(/\.+$/, '') };
  }
  return { pattern, port };
}

function networkContains(pattern, address) {
  if (pattern.kind !== 'network') {
    return false;
  }
  const ip = canonical(address);
  const net = canonical(pattern.ip);
  if (ip.v !== net.v) {
    return false;
  }
  const prefix = net === pattern.ip ? pattern.prefix : Math.max(0, pattern.prefix - 96);
  return within(ip.bits, net.bits, prefix, ip.v === 4 ? 32 : 128);
}

/**
 * An allow-list of rules such as `auth.example.com`, `auth.example.com:443`,
 * `*.example.com`, `*:443`, `127.0.0.1`, `10.0.0.0/8:8443`, `[::1]:8443`. A rule
 * without a port allows every port. No rules: nothing is allowed.
 */
export class EgressPolicy {
  constructor(rules = []) {
    this.rules = rules.map((r) => parseRule(String(r).trim()));
    this.text = rules.map(String);
  }

  /** Whether `host` (a name or IP literal, as the plugin asked) may be dialled on
   * `port` at all; checked before resolution, so a refused name is never looked up.
   * Returns null when allowed, else the reason. */
  checkName(host, port) {
    const name = host.replace(/\.+$/, '').toLowerCase();
    const literal = parseAddress(name.replace(/^\[/, '').replace(/\]$/, ''));
    const allowed = this.rules.some((rule) => {
      if (rule.port !== null && rule.port !== port) {
        return false;
      }
      const p = rule.pattern;
      if (p.kind === 'any') {
        return true;
      }
      if (literal) {
        return networkContains(p, literal);
      }
      if (p.kind === 'name') {
        return p.name === name;
      }
      if (p.kind === 'suffix') {
        return name.length > p.suffix.length + 1 && name.endsWith(`.${p.suffix}`);
      }
      return false;
    });
    return allowed ? null : `${name}:${port} is not in the egress allow-list`;
  }

  /** Whether a resolved address may be dialled on `port`: public addresses pass;
   * private, loopback, link-local and other special-purpose ones (IPv6 forms of them
   * included) need an address rule. Returns null when allowed, else the reason. */
  checkAddress(address, port) {
    const ip = typeof address === 'string' ? parseAddress(address) : address;
    if (isPublic(ip)) {
      return null;
    }
    const allowed = this.rules.some((rule) => (rule.port === null || rule.port === port)
      && networkContains(rule.pattern, ip));
    return allowed ? null : `${typeof address === 'string' ? address : 'the address'} is a private, loopback, link-local or other special-purpose address and no rule allows it`;
  }
}
