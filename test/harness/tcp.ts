// Established TCP connections to a port, read from /proc/net/tcp and tcp6 (what `ss` reads
// too): the connection-counting tests need no iproute2.

import { readFileSync } from 'node:fs';

export interface TcpConnection {
  /** local address and port, e.g. `127.0.0.1:40522` (IPv6 in brackets) */
  local: string;
  /** the peer's address, without its port */
  peer: string;
}

/** Connections in state ESTABLISHED whose remote port is `port`. */
export function establishedTo(port: number): TcpConnection[] {
  const found: TcpConnection[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // no IPv6 here
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] !== '01') continue; // 01: ESTABLISHED
      const local = endpoint(f[1]!);
      const remote = endpoint(f[2]!);
      if (remote.port === port) found.push({ local: `${local.address}:${local.port}`, peer: remote.address });
    }
  }
  return found;
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
