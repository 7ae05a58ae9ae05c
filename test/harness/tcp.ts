// Established TCP connections to a port, read from /proc/net/tcp and tcp6 (what `ss` reads
// too): the connection-counting tests need no iproute2.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface TcpConnection {
  /** local address and port, e.g. `127.0.0.1:40522` (IPv6 in brackets) */
  local: string;
  /** the local port alone */
  localPort: number;
  /** the peer's address, without its port */
  peer: string;
}

/** Connections in state ESTABLISHED whose remote port is `port`; with `pid`, only that process's. */
export function establishedTo(port: number, pid?: number): TcpConnection[] {
  const mine = pid === undefined ? undefined : socketInodes(pid);
  const found: TcpConnection[] = [];
  for (const file of pid === undefined ? ['/proc/net/tcp', '/proc/net/tcp6'] : [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // no IPv6 here
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '01') continue; // 01: ESTABLISHED
      if (mine && !mine.has(f[9]!)) continue;
      const local = endpoint(f[1]!);
      const remote = endpoint(f[2]!);
      if (remote.port === port) found.push({ local: `${local.address}:${local.port}`, localPort: local.port, peer: remote.address });
    }
  }
  return found;
}

/** The socket inodes among a process's open files. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // the fd closed while listed
    }
  }
  return inodes;
}

/** `0100007F:1F90` → 127.0.0.1, 8080; IPv6 as four little-endian 32-bit words. */
function endpoint(hex: string): { address: string; port: number } {
  const [addr, port] = hex.split(':') as [string, string];
  const bytes = Buffer.from(addr, 'hex');
  for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  let address: string;
  if (bytes.length === 4) address = [...bytes].join('.');
  else if (bytes.subarray(0, 12).equals(Buffer.from('00000000000000000000ffff', 'hex'))) address = [...bytes.subarray(12)].join('.');
  else address = `[${(bytes.toString('hex').match(/.{4}/g) ?? []).join(':')}]`;
  return { address, port: parseInt(port, 16) };
}
