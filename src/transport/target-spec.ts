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
  throw new DdtError('BAD_TARGET', `cannot parse remote location ${JSON.stringify(spec)}: ${why}`);
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

