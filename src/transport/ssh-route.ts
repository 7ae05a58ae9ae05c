/**
 * An ssh2 connection to the target along its way: through each jump host in turn (a channel
 * forwarded by one is the next one's socket, as `ssh -J` does) and, where the way starts with
 * a ProxyCommand, over that command's stdio. Every host's key is checked against its own
 * known_hosts files, the jump hosts' like the target's.
 *
 * Connections: each call makes one TCP connection from this host, to the first host of the
 * way (or none: the proxy command makes it), whatever the number of hops. The jump hosts'
 * connections end when the target's does.
 */
import type { AnyAuthMethod, Client, ClientChannel } from 'ssh2';
import type { Duplex } from 'node:stream';
import { DdtError, isDdtError } from '../errors.js';
import { knownHostsFilesOf, type JumpHost } from './endpoint.js';
import { knownHostName } from './known-hosts.js';
import { ProxyStream } from './proxy-stream.js';
import { connectSsh, loadAuthMethods, type SshAuthSettings, type SshEndpoint } from './ssh-connect.js';

/** The way to a target: its jump hosts (with their keys, read once), and a proxy command. */
export interface Route {
  hops: Array<{ hop: JumpHost; auth: AnyAuthMethod[] }>;
  proxyCommand?: string;
}

/** The way, with every jump host's keys loaded now (a reconnect must not depend on the files). */
export function routeOf(hops: JumpHost[] | undefined, proxyCommand: string | undefined, s: Pick<SshAuthSettings, 'agent' | 'onWarning'>): Route {
  return {
    hops: (hops ?? []).map((hop) => ({ hop, auth: loadAuthMethods(hop.user, { ...s, identityFiles: hop.identityFiles, identitiesOnly: hop.identitiesOnly, knownHostsFiles: [], acceptNewHostKey: false }) })),
    ...(proxyCommand !== undefined && { proxyCommand }),
  };
}

export interface RouteAttempt {
  /** The target's host key and auth rules (timeouts too: they bound every hop of this attempt). */
  settings: SshAuthSettings;
  signal?: AbortSignal;
}

/** Connect to `target` along `route`; `onLost` as for connectSsh (the target's connection). */
export async function connectRoute(
  target: SshEndpoint,
  auth: AnyAuthMethod[],
  route: Route,
  attempt: RouteAttempt,
  onLost: (client: Client, reason: string) => void,
): Promise<Client> {
  const { settings: s, signal } = attempt;
  const chain: Client[] = [];
  const endChain = () => {
    for (const c of chain.reverse()) c.end();
  };
  const proxy = route.proxyCommand !== undefined ? new ProxyStream(route.proxyCommand) : undefined;
  let sock: Duplex | undefined = proxy;
  try {
    // One deadline for the whole way: each hop gets what is left of it, as an attempt promises
    // its caller (the reconnect window) no more than `readyTimeoutMs` in all.
    const deadline = Date.now() + (s.readyTimeoutMs ?? 30_000);
    const left = () => Math.max(1, deadline - Date.now());
    for (const [i, { hop, auth: hopAuth }] of route.hops.entries()) {
      const next = route.hops[i + 1]?.hop ?? target;
      const label = `jump host ${hop.name}`;
      const settings: SshAuthSettings = {
        ...s,
        identityFiles: hop.identityFiles,
        identitiesOnly: hop.identitiesOnly,
        knownHostsFiles: knownHostsFilesOf(hop),
        readyTimeoutMs: Math.min(left(), hop.connectTimeoutMs ?? Infinity),
      };
      const client = await connectSsh({ host: hop.host, port: hop.port, user: hop.user, label }, settings, hopAuth, () => undefined, { sock, signal });
      chain.push(client);
      sock = await forward(client, label, next.host, next.port, signal);
    }
    const client = await connectSsh(target, route.hops.length ? { ...s, readyTimeoutMs: left() } : s, auth, (c, reason) => {
      endChain();
      onLost(c, reason);
    }, { sock, signal });
    return client;
  } catch (err) {
    sock?.destroy();
    endChain();
    const why = proxy?.failure();
    if (why && !isDdtError(err, 'SSH_HOST_KEY_UNKNOWN', 'SSH_HOST_KEY_CHANGED', 'SSH_AUTH') && !signal?.aborted) {
      throw new DdtError('SSH_CONNECT', `ProxyCommand for ${route.hops[0]?.hop.name ?? target.label ?? target.host} failed: ${why} (${route.proxyCommand})`, { cause: err });
    }
    throw err;
  }
}

/** A channel from `client` to host:port, as the next connection's socket. */
function forward(client: Client, label: string, host: string, port: number, signal?: AbortSignal): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // The originator is only informative (OpenSSH's -W says 127.0.0.1 too).
      client.forwardOut('127.0.0.1', 0, host, port, (err, ch) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(new DdtError('SSH_CONNECT', `${label} could not connect to ${knownHostName(host, port)}: ${err.message}`, { cause: err }));
        else resolve(ch);
      });
    } catch (err) {
      signal?.removeEventListener('abort', onAbort);
      reject(new DdtError('SSH_CONNECT', `${label}: ${(err as Error).message}`, { cause: err }));
    }
  });
}
