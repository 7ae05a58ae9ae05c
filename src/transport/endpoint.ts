import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { checkBoundedFile, IDENTITY_FILE_MAX, SSH_FILE_MAX } from './bounded-file.js';
import { defaultKnownHostsFiles } from './known-hosts.js';
import { expandTokens, localUser, resolveSshHost, type SshHostConfig } from './ssh-config.js';
import { formatJumpSpec, parseJumpSpecs, type RemoteSpec } from './target-spec.js';
import { DdtError } from '../errors.js';

/** How one SSH server is logged in to and trusted: the target, or a jump host on the way. */
export interface SshHostSettings {
  port: number;
  user: string;
  identityFiles: string[];
  /** `--known-hosts FILE`: replaces every default file, user and global. */
  knownHostsFile?: string;
  /** UserKnownHostsFile of the ssh config: replaces the user's files; the global ones stay. */
  userKnownHostsFiles?: string[];
  /** IdentitiesOnly: the identity files only, no other agent keys. */
  identitiesOnly?: boolean;
  connectTimeoutMs?: number;
  serverAliveIntervalMs?: number;
}

/** A jump host, connected before the next one (or the target) on the way. */
export interface JumpHost extends SshHostSettings {
  /** Where to connect (HostName). */
  host: string;
  /** As the user wrote it (an alias), for messages. */
  name: string;
}

/** Everything needed to reach the remote end; recorded in the journal so resume needs nothing else. */
export interface Endpoint extends SshHostSettings {
  hosts: string[];
  /** `-J` or ProxyJump as given; resolved into `hops` through the ssh config on every run. */
  jump?: string;
  /** The jump hosts in the order they are connected. */
  hops?: JumpHost[];
  /**
   * Run instead of a TCP connection to the first host of the way (hops[0], else the target),
   * with `sh -c`; its stdin and stdout carry that connection. Tokens are expanded.
   */
  proxyCommand?: string;
  /** `--ssh-config` as given: the jump hosts are resolved through it again on resume. */
  sshConfig?: string;
  /** ssh config keywords ddt does not carry out, each with the host it was set for. */
  unsupported?: string[];
}

export interface EndpointOptions {
  port?: number;
  user?: string;
  identity?: string[];
  knownHosts?: string;
  sshConfig?: string;
  /** `-J [user@]host[:port][,…]`. */
  jump?: string;
}

const DEFAULT_IDENTITIES = ['id_ed25519', 'id_ecdsa', 'id_rsa'];
/** Longer chains are a ProxyJump loop in the config, not a network. */
const MAX_HOPS = 8;

/** Command line beats ~/.ssh/config beats defaults, as with OpenSSH. */
export async function resolveEndpoint(spec: RemoteSpec, o: EndpointOptions): Promise<Endpoint> {
  const configs = spec.hosts.map((h) => resolveSshHost(h, o.sshConfig));
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
  const e: Endpoint = { hosts: configs.map((c) => c.hostName), port, user, identityFiles, ...settingsOf(first), knownHostsFile: o.knownHosts };
  if (o.knownHosts !== undefined) delete e.userKnownHostsFiles;
  if (o.sshConfig !== undefined) e.sshConfig = o.sshConfig;
  // -J on the command line replaces the config's ProxyJump and ProxyCommand, as with ssh.
  const jump = o.jump ?? first.proxyJump;
  if (jump !== undefined) e.jump = jump;
  else if (first.proxyCommand !== undefined) e.proxyCommand = expandTokens(first.proxyCommand, { host: e.hosts[0]!, alias: spec.hosts[0]!, user, port });
  const unsupported = configs.flatMap((c) => c.unsupported.map((k) => `${k} (${c.alias})`));
  const routed = resolveRoute(e, o.sshConfig);
  routed.unsupported = [...unsupported, ...(routed.unsupported ?? [])];
  checkEndpointFiles(routed);
  return routed;
}

/** The target's honoured settings from its config entry. */
function settingsOf(c: SshHostConfig): Partial<SshHostSettings> {
  const s: Partial<SshHostSettings> = {};
  if (c.userKnownHostsFiles) s.userKnownHostsFiles = c.userKnownHostsFiles;
  if (c.identitiesOnly !== undefined) s.identitiesOnly = c.identitiesOnly;
  if (c.connectTimeoutMs !== undefined) s.connectTimeoutMs = c.connectTimeoutMs;
  if (c.serverAliveIntervalMs !== undefined) s.serverAliveIntervalMs = c.serverAliveIntervalMs;
  return s;
}

/**
 * Resolve `e.jump` into hosts, each through the ssh config like `ssh -J` does: its own
 * HostName, Port, User, IdentityFile, UserKnownHostsFile. The first hop's own ProxyJump (or
 * ProxyCommand) leads further back; the later hops are reached through the ones before them.
 * What a hop's config does not say comes from the target: its keys and known_hosts files
 * (`--known-hosts`, when given, for every host of the way).
 */
export function resolveRoute(e: Endpoint, sshConfig = e.sshConfig): Endpoint {
  if (e.jump === undefined) return { ...e, hops: [] };
  const unsupported: string[] = [];
  let proxyCommand: string | undefined;
  const hopsOf = (jump: string, depth: number): JumpHost[] => {
    const specs = parseJumpSpecs(jump);
    const out: JumpHost[] = [];
    specs.forEach((spec, i) => {
      const c = resolveSshHost(spec.host, sshConfig);
      unsupported.push(...c.unsupported.map((k) => `${k} (${spec.host})`));
      const hop: JumpHost = {
        name: formatJumpSpec(spec),
        host: c.hostName,
        port: spec.port ?? c.port ?? 22,
        user: spec.user ?? c.user ?? localUser(),
        identityFiles: c.identityFiles.length ? c.identityFiles : e.identityFiles,
        ...inherited(e),
        ...settingsOf(c),
      };
      if (e.knownHostsFile !== undefined) {
        hop.knownHostsFile = e.knownHostsFile;
        delete hop.userKnownHostsFiles;
      } else if (c.userKnownHostsFiles) delete hop.knownHostsFile;
      if (i === 0 && c.proxyJump !== undefined) {
        if (depth >= MAX_HOPS) throw new DdtError('BAD_SSH_CONFIG', `jump hosts lead back more than ${MAX_HOPS} times from ${e.hosts[0]} (a ProxyJump loop in the ssh config?)`);
        out.push(...hopsOf(c.proxyJump, depth + 1));
      } else if (i === 0 && c.proxyCommand !== undefined) {
        proxyCommand = expandTokens(c.proxyCommand, { host: hop.host, alias: spec.host, user: hop.user, port: hop.port });
      }
      out.push(hop);
    });
    return out;
  };
  const hops = hopsOf(e.jump, 0);
  if (hops.length > MAX_HOPS) throw new DdtError('BAD_OPTION', `${hops.length} jump hosts on the way to ${e.hosts[0]}: at most ${MAX_HOPS}`);
  const out: Endpoint = { ...e, hops, unsupported: [...(e.unsupported ?? []), ...unsupported] };
  if (proxyCommand === undefined) delete out.proxyCommand;
  else out.proxyCommand = proxyCommand;
  return out;
}

/** What a hop takes from the target when its own config is silent. */
function inherited(e: Endpoint): Partial<SshHostSettings> {
  const s: Partial<SshHostSettings> = {};
  if (e.knownHostsFile !== undefined) s.knownHostsFile = e.knownHostsFile;
  if (e.userKnownHostsFiles) s.userKnownHostsFiles = e.userKnownHostsFiles;
  if (e.connectTimeoutMs !== undefined) s.connectTimeoutMs = e.connectTimeoutMs;
  if (e.serverAliveIntervalMs !== undefined) s.serverAliveIntervalMs = e.serverAliveIntervalMs;
  return s;
}

/**
 * Refuse (exit 2) identity and known_hosts files that are not regular files of a sane size,
 * before anything connects: `-i /dev/zero` must not be read at all.
 */
export function checkEndpointFiles(e: Endpoint): void {
  for (const h of [e, ...(e.hops ?? [])]) {
    for (const f of h.identityFiles) checkBoundedFile(f, { what: 'identity file', max: IDENTITY_FILE_MAX });
    for (const f of knownHostsFilesOf(h)) checkBoundedFile(f, { what: 'known_hosts file', max: SSH_FILE_MAX });
  }
}

/** The known_hosts files of a host, the first being where a newly accepted key goes. */
export function knownHostsFilesOf(e: SshHostSettings): string[] {
  if (e.knownHostsFile) return [e.knownHostsFile];
  if (e.userKnownHostsFiles?.length) return [...e.userKnownHostsFiles, ...defaultKnownHostsFiles().filter((f) => f.startsWith('/etc/'))];
  return defaultKnownHostsFiles();
}
