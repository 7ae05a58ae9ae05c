import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { defaultKnownHostsFiles } from './known-hosts.js';
import { resolveSshHost } from './ssh-config.js';
import type { RemoteSpec } from './target-spec.js';
import { DdtError } from '../errors.js';

/** Everything needed to reach the remote end; recorded in the journal so resume needs nothing else. */
export interface Endpoint {
  hosts: string[];
  port: number;
  user: string;
  identityFiles: string[];
  /** `--known-hosts FILE` replaces the default files, like OpenSSH's UserKnownHostsFile. */
  knownHostsFile?: string;
}

export interface EndpointOptions {
  port?: number;
  user?: string;
  identity?: string[];
  knownHosts?: string;
  sshConfig?: string;
}

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

/** Command line beats ~/.ssh/config beats defaults, as with OpenSSH. */
export async function resolveEndpoint(spec: RemoteSpec, o: EndpointOptions): Promise<Endpoint> {
  const configs = await Promise.all(spec.hosts.map((h) => resolveSshHost(h, o.sshConfig)));
  const first = configs[0]!;
  const port = o.port ?? first.port ?? 22;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DdtError('BAD_OPTION', `port ${port} is not 1..65535`);
  const user = o.user ?? spec.user ?? first.user ?? process.env.USER ?? 'root';
  let identityFiles = o.identity?.length ? o.identity : first.identityFiles;
  if (!identityFiles.length) identityFiles = DEFAULT_IDENTITIES.map((n) => join(homedir(), '.ssh', n)).filter((p) => existsSync(p));
  for (const f of o.identity ?? []) {
    if (!existsSync(f)) throw new DdtError('BAD_OPTION', `identity file ${f} does not exist: check -i`);
  }
  if (o.knownHosts !== undefined && !existsSync(o.knownHosts)) {
    throw new DdtError('BAD_OPTION', `known_hosts file ${o.knownHosts} does not exist: check --known-hosts`);
  }
  return { hosts: configs.map((c) => c.hostName), port, user, identityFiles, knownHostsFile: o.knownHosts };
}

export function knownHostsFilesOf(e: Endpoint): string[] {
  return e.knownHostsFile ? [e.knownHostsFile] : defaultKnownHostsFiles();
}
