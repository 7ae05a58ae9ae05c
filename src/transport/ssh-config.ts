/**
 * Resolves a host alias through the user's OpenSSH client config, so `ddt send img myvm:/dev/vdb`
 * reaches the same machine, port, user and key, through the same jump hosts, as `ssh myvm`.
 * Honoured: HostName, Port, User, IdentityFile, IdentitiesOnly, UserKnownHostsFile,
 * ProxyJump, ProxyCommand, ConnectTimeout, ServerAliveInterval. Other keywords that change
 * where or how ssh connects are reported (see ssh-config-keywords), never silently dropped.
 * `Match exec` is never evaluated: reading a config must not run commands.
 */
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import SSHConfig from 'ssh-config';
import { DdtError } from '../errors.js';
import { readBoundedFile, SSH_FILE_MAX } from './bounded-file.js';
import { defuse, matchExecMatters, undefuse, unsupportedKeywords } from './ssh-config-keywords.js';

export interface SshHostConfig {
  /** What the user typed. */
  alias: string;
  /** Where to connect (HostName, else the alias). */
  hostName: string;
  port?: number;
  user?: string;
  /** IdentityFile entries in config order, `~` and `%` tokens expanded. */
  identityFiles: string[];
  identitiesOnly?: boolean;
  /** UserKnownHostsFile entries, expanded. */
  userKnownHostsFiles?: string[];
  /** ProxyJump as written (`none` is left out). */
  proxyJump?: string;
  /** ProxyCommand as written, tokens not yet expanded (`none` is left out). */
  proxyCommand?: string;
  connectTimeoutMs?: number;
  serverAliveIntervalMs?: number;
  /** Keywords set for this host that ddt does not carry out. */
  unsupported: string[];
}

export function defaultSshConfigPath(): string {
  return join(homedir(), '.ssh', 'config');
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function all(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? '';
  }
}

export interface TokenContext {
  host: string;
  alias: string;
  user: string;
  port: number;
}

/** ssh_config(5) TOKENS, the common ones; unknown ones are kept literally. */
export function expandTokens(p: string, ctx: TokenContext): string {
  return p.replace(/%([%dhnpru])/g, (_, t: string) => {
    switch (t) {
      case '%':
        return '%';
      case 'd':
        return homedir();
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
}

/** A path keyword's value: tokens and a leading `~` expanded. */
export function expandPath(p: string, ctx: TokenContext): string {
  const out = expandTokens(p, ctx);
  const home = homedir();
  if (out === '~') return home;
  return out.startsWith('~/') ? join(home, out.slice(2)) : out;
}

function seconds(v: string | undefined, keyword: string, alias: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 86_400) throw new DdtError('BAD_SSH_CONFIG', `ssh config for ${alias}: bad ${keyword} ${JSON.stringify(v)} (whole seconds)`);
  return n === 0 ? undefined : n * 1000;
}

function yesNo(v: string | undefined): boolean | undefined {
  return v === undefined ? undefined : /^(yes|true)$/i.test(v);
}

/** Parse config text and resolve `alias` in it (exported for tests and for `--ssh-config`). */
export function resolveFromText(text: string, alias: string): SshHostConfig {
  let computed: Record<string, string | string[]>;
  try {
    const config = SSHConfig.parse(text);
    defuse(config);
    computed = undefuse(config.compute({ Host: alias }, { ignoreCase: true, matchExec: false }));
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
  const ctx = { host: hostName, alias, user: user ?? localUser(), port: port ?? 22 };
  const identityFiles = all(computed.identityfile).filter((f) => f.toLowerCase() !== 'none').map((f) => expandPath(f, ctx));
  const out: SshHostConfig = { alias, hostName, identityFiles, unsupported: unsupportedKeywords(computed) };
  if (matchExecMatters(text, alias, computed)) out.unsupported.push('Match exec');
  if (port !== undefined) out.port = port;
  if (user !== undefined) out.user = user;
  const only = yesNo(first(computed.identitiesonly));
  if (only !== undefined) out.identitiesOnly = only;
  const known = all(computed.userknownhostsfile).flatMap((f) => f.split(/\s+/)).filter(Boolean);
  if (known.length) out.userKnownHostsFiles = known.map((f) => expandPath(f, ctx));
  // ProxyJump and ProxyCommand exclude each other: the one met first wins, as in ssh (the
  // computed object keeps keys in the order they were first set).
  const proxy = Object.keys(computed).find((k) => k === 'proxyjump' || k === 'proxycommand');
  const value = proxy && first(computed[proxy])?.trim();
  if (value && value.toLowerCase() !== 'none') {
    if (proxy === 'proxyjump') out.proxyJump = value;
    else out.proxyCommand = value;
  }
  const connect = seconds(first(computed.connecttimeout), 'ConnectTimeout', alias);
  if (connect !== undefined) out.connectTimeoutMs = connect;
  const alive = seconds(first(computed.serveraliveinterval), 'ServerAliveInterval', alias);
  if (alive !== undefined) out.serverAliveIntervalMs = alive;
  return out;
}

/** Resolve `alias` via `configPath` (default `~/.ssh/config`); a missing file means no settings. */
export function resolveSshHost(alias: string, configPath = defaultSshConfigPath()): SshHostConfig {
  let text: string | undefined;
  try {
    text = readBoundedFile(configPath, { what: 'ssh config', max: SSH_FILE_MAX, code: 'BAD_SSH_CONFIG' })?.toString('utf8');
  } catch (err) {
    if (err instanceof DdtError) throw err;
    throw new DdtError('BAD_SSH_CONFIG', `cannot read ${configPath}: ${(err as Error).message}`, { cause: err });
  }
  if (text === undefined) return { alias, hostName: alias, identityFiles: [], unsupported: [] };
  return resolveFromText(text, alias);
}
