/**
 * Resolves a host alias through the user's OpenSSH client config, so `ddt send img myvm:/dev/vdb`
 * reaches the same machine, port, user and key as `ssh myvm`. Only HostName, Port,
 * User and IdentityFile are honoured. `Match exec` is never evaluated: reading a config must not
 * run commands.
 */
import { readFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import SSHConfig from 'ssh-config';
import { DdtError } from '../errors.js';

export interface SshHostConfig {
  /** What the user typed. */
  alias: string;
  /** Where to connect (HostName, else the alias). */
  hostName: string;
  port?: number;
  user?: string;
  /** IdentityFile entries in config order, `~` and `%` tokens expanded. */
  identityFiles: string[];
}

export function defaultSshConfigPath(): string {
  return join(homedir(), '.ssh', 'config');
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? '';
  }
}

/** ssh_config(5) TOKENS for IdentityFile: the common ones; unknown ones are kept literally. */
export function expandPath(p: string, ctx: { host: string; alias: string; user: string; port: number }): string {
  const home = homedir();
  let out = p.replace(/%([%dhnpru])/g, (_, t: string) => {
    switch (t) {
      case '%':
        return '%';
      case 'd':
        return home;
      case 'h':
        return ctx.host;
      case 'n':
        return ctx.alias;
      case 'p':
        return String(ctx.port);
      case 'r':
        return ctx.user;
      default: // u
        return localUser();
    }
  });
  if (out === '~') out = home;
  else if (out.startsWith('~/')) out = join(home, out.slice(2));
  return out;
}

/** Parse config text and resolve `alias` in it (exported for tests and for `--ssh-config`). */
export function resolveFromText(text: string, alias: string): SshHostConfig {
  let computed: Record<string, string | string[]>;
  try {
    computed = SSHConfig.parse(text).compute({ Host: alias }, { ignoreCase: true, matchExec: false });
  } catch (err) {
    throw new DdtError('BAD_SSH_CONFIG', `cannot parse ssh config: ${(err as Error).message}`, { cause: err });
  }
  const hostName = first(computed.hostname) ?? alias;
  const user = first(computed.user);
  const portText = first(computed.port);
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new DdtError('BAD_SSH_CONFIG', `ssh config for ${alias}: bad Port ${JSON.stringify(portText)}`);
    }
  }
  const rawIds = computed.identityfile;
  const ids = rawIds === undefined ? [] : Array.isArray(rawIds) ? rawIds : [rawIds];
  const ctx = { host: hostName, alias, user: user ?? localUser(), port: port ?? 22 };
  const identityFiles = ids.filter((f) => f.toLowerCase() !== 'none').map((f) => expandPath(f, ctx));
  const out: SshHostConfig = { alias, hostName, identityFiles };
  if (port !== undefined) out.port = port;
  if (user !== undefined) out.user = user;
  return out;
}

/** Resolve `alias` via `configPath` (default `~/.ssh/config`); a missing file means no settings. */
export async function resolveSshHost(alias: string, configPath = defaultSshConfigPath()): Promise<SshHostConfig> {
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { alias, hostName: alias, identityFiles: [] };
    throw new DdtError('BAD_SSH_CONFIG', `cannot read ${configPath}: ${(err as Error).message}`, { cause: err });
  }
  return resolveFromText(text, alias);
}
