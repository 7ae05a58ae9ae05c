import { DdtError } from '../errors.js';
/**
 * `[user@]host[,host2,...]:path` as users type it for scp, plus IPv6 literals in brackets
 * (`[::1]:/dev/vdb`, `root@[fe80::1%eth0]:/dev/vdb`). Several hosts name several addresses of
 * the same machine; the pool spreads its connections over them.
 */

export interface RemoteSpec {
  user?: string;
  hosts: string[];
  path: string;
}

const HOSTNAME = /^[A-Za-z0-9_](?:[A-Za-z0-9._%+-]*)$/;
const IPV6 = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9._-]+)?$/;
const USER = /^[^\s:/\[\],'"`$\\;|&<>()*?!]+$/;

/**
 * Index of the ':' that ends the host part, or -1. Like scp, a '/' before it means a local
 * path (`./a:b`, `/dev/disk/by-id/x:0`), and colons inside brackets belong to IPv6.
 */
function hostSeparator(spec: string): number {
  let depth = 0;
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i];
    if (c === '[') depth++;
    else if (c === ']') depth = Math.max(0, depth - 1);
    else if (c === '/' && depth === 0) return -1;
    else if (c === ':' && depth === 0) return i;
  }
  return -1;
}

/** True when `spec` is meant as a remote location (has a host part), even a malformed one. */
export function isRemoteSpec(spec: string): boolean {
  return hostSeparator(spec) > 0;
}

function bad(spec: string, why: string): never {
  throw new DdtError('BAD_TARGET', `cannot parse remote location ${JSON.stringify(spec)}: ${why}${ipv6Hint(spec)}`);
}

/**
 * `root@::1:/dev/x` reads as host "" and path ":1:/dev/x", which helps nobody: when the part
 * before the path looks like an IPv6 address, say how to write it.
 */
function ipv6Hint(spec: string): string {
  const at = spec.lastIndexOf('@', spec.search(/:\//) >>> 0);
  const user = at >= 0 ? spec.slice(0, at + 1) : '';
  const rest = spec.slice(at + 1);
  const m = /^([0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9._-]+)?):(\/.*)$/.exec(rest);
  return m ? `; IPv6 addresses go in brackets: ${user}[${m[1]}]:${m[2]}` : '';
}

function parseHost(spec: string, h: string): string {
  if (h.startsWith('[')) {
    if (!h.endsWith(']')) bad(spec, `unbalanced brackets in ${JSON.stringify(h)}`);
    const addr = h.slice(1, -1);
    if (!IPV6.test(addr)) bad(spec, `${JSON.stringify(addr)} is not an IPv6 address`);
    return addr;
  }
  if (h.includes('[') || h.includes(']')) bad(spec, `unbalanced brackets in ${JSON.stringify(h)}`);
  if (!HOSTNAME.test(h)) bad(spec, `${JSON.stringify(h)} is not a host name`);
  return h;
}

export function parseRemoteSpec(spec: string): RemoteSpec {
  if (spec.includes('\0') || /[\r\n]/.test(spec)) bad(spec, 'contains a NUL or line break');
  const sep = hostSeparator(spec);
  if (sep < 0) bad(spec, 'expected [user@]host:path');
  const head = spec.slice(0, sep);
  const path = spec.slice(sep + 1);
  if (path.length === 0) bad(spec, 'the path after ":" is empty');
  // `2001:db8::5:/dev/x` splits at its first colon; remote paths are absolute.
  if (!path.startsWith('/') && ipv6Hint(spec)) bad(spec, 'the host looks like an IPv6 address');

  // The user ends at the last '@' outside brackets (ssh takes the last '@' too).
  let at = -1;
  let depth = 0;
  for (let i = 0; i < head.length; i++) {
    if (head[i] === '[') depth++;
    else if (head[i] === ']') depth--;
    else if (head[i] === '@' && depth === 0) at = i;
  }
  let user: string | undefined;
  let hostPart = head;
  if (at >= 0) {
    user = head.slice(0, at);
    hostPart = head.slice(at + 1);
    if (!USER.test(user)) bad(spec, `${JSON.stringify(user)} is not a user name`);
  }
  if (hostPart.length === 0) bad(spec, 'the host is empty');

  const hosts: string[] = [];
  let cur = '';
  depth = 0;
  for (const c of hostPart) {
    if (c === '[') depth++;
    if (c === ']') depth--;
    if (c === ',' && depth === 0) {
      hosts.push(parseHost(spec, cur));
      cur = '';
    } else cur += c;
  }
  hosts.push(parseHost(spec, cur));
  return user === undefined ? { hosts, path } : { user, hosts, path };
}


/** One hop of a jump chain, as `-J` or ProxyJump give it. */
export interface JumpSpec {
  user?: string;
  /** A host name, an alias of the ssh config, or an IPv6 address (without brackets). */
  host: string;
  port?: number;
}

/**
 * `[user@]host[:port][,…]` (also `ssh://[user@]host[:port]`, IPv6 as `[addr]:port`), the
 * syntax of ssh's -J and ProxyJump.
 */
export function parseJumpSpecs(text: string): JumpSpec[] {
  const fail = (why: string): never => {
    throw new DdtError('BAD_OPTION', `cannot parse jump host ${JSON.stringify(text)}: ${why} (expected [user@]host[:port][,…])`);
  };
  if (/[\0\r\n\s]/.test(text)) fail('contains a space, NUL or line break');
  return text.split(',').map((raw) => {
    let hop = raw.startsWith('ssh://') ? raw.slice(6) : raw;
    const at = hop.lastIndexOf('@');
    const out: JumpSpec = { host: '' };
    if (at >= 0) {
      out.user = hop.slice(0, at);
      if (!USER.test(out.user)) fail(`${JSON.stringify(out.user)} is not a user name`);
      hop = hop.slice(at + 1);
    }
    let portText: string | undefined;
    if (hop.startsWith('[')) {
      const end = hop.indexOf(']');
      if (end < 0) fail(`unbalanced brackets in ${JSON.stringify(hop)}`);
      out.host = hop.slice(1, end);
      if (!IPV6.test(out.host)) fail(`${JSON.stringify(out.host)} is not an IPv6 address`);
      const tail = hop.slice(end + 1);
      if (tail && !tail.startsWith(':')) fail(`unexpected ${JSON.stringify(tail)} after ${JSON.stringify(hop.slice(0, end + 1))}`);
      if (tail) portText = tail.slice(1);
    } else {
      const parts = hop.split(':');
      if (parts.length > 2) fail(`${JSON.stringify(hop)} has more than one ":"; write an IPv6 address in brackets: [${hop}]`);
      out.host = parts[0]!;
      portText = parts[1];
      if (!HOSTNAME.test(out.host)) fail(out.host ? `${JSON.stringify(out.host)} is not a host name` : 'a host is empty');
    }
    if (portText !== undefined) {
      const port = Number(portText);
      if (!/^\d+$/.test(portText) || port < 1 || port > 65535) fail(`port ${JSON.stringify(portText)} is not 1..65535`);
      out.port = port;
    }
    return out;
  });
}

/** A hop as `-J` takes it (IPv6 in brackets). */
export function formatJumpSpec(j: JumpSpec): string {
  const host = j.host.includes(':') ? `[${j.host}]` : j.host;
  return `${j.user ? `${j.user}@` : ''}${host}${j.port ? `:${j.port}` : ''}`;
}
