/**
 * One ssh2 connection, set up the way ddt needs it: host key checked against known_hosts
 * ssh-agent then identity files, AES-GCM first, 10 s keepalive. Failures come
 * back as DdtErrors with a one-line message; `fatal` ones (host key, authentication) are never
 * retried, the others may be (see ssh-pool). The connection may run over a stream that is
 * already there (a channel forwarded by a jump host, a proxy command's stdio) instead of TCP.
 */
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import type * as Ssh2 from 'ssh2';
import type { AlgorithmList, AnyAuthMethod, CipherAlgorithm, Client, ConnectConfig, ServerHostKeyAlgorithm } from 'ssh2';
import { IDENTITY_FILE_MAX, readBoundedFile } from './bounded-file.js';
import { appendKnownHost, checkHostKey, knownHostName, knownKeyTypes } from './known-hosts.js';
import { KEEPALIVE_COUNT_MAX, KEEPALIVE_MAX_MS } from './reconnect.js';
import { DdtError } from '../errors.js';

let ssh2Module: typeof Ssh2 | undefined;
/**
 * ssh2, loaded on first use rather than with the CLI: loading it takes ≈ 50 ms of the event
 * loop, and a send spawns its OpenSSH masters (whose connect is the longest step before the
 * first block) before it needs ssh2.
 */
function ssh2(): typeof Ssh2 {
  return (ssh2Module ??= createRequire(import.meta.url)('ssh2') as typeof Ssh2);
}

export interface SshEndpoint {
  host: string;
  port: number;
  user: string;
  /** What messages call it (`jump host bastion`); default its known_hosts name. */
  label?: string;
}

export interface SshAuthSettings {
  identityFiles: string[];
  /** ssh-agent socket (normally `SSH_AUTH_SOCK`). */
  agent?: string;
  knownHostsFiles: string[];
  acceptNewHostKey: boolean;
  /** Only the identity files, not the agent's keys (IdentitiesOnly). */
  identitiesOnly?: boolean;
  keepaliveMs?: number;
  readyTimeoutMs?: number;
  /** Cipher preference; default AES-128-GCM first (measured faster than chacha20 on these machines). */
  ciphers?: string[];
  onWarning?(msg: string): void;
}

/** First-contact errors that mean "wrong address", not "flaky link": fail fast. */
const UNREACHABLE = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

export function isFatalSshError(err: unknown): boolean {
  return err instanceof DdtError && err.retry === 'never';
}

export function isUnreachableError(err: unknown): boolean {
  const code = (err as { cause?: { code?: unknown } })?.cause?.code;
  return typeof code === 'string' && UNREACHABLE.has(code);
}

const HOST_KEY_ALGOS = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
]);

/** Offer the key types known_hosts already has first, as ssh does, so a known host is not "unknown". */
function hostKeyPreference(knownTypes: string[]): string[] {
  return knownTypes.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t])).filter((t) => HOST_KEY_ALGOS.has(t));
}

/** ssh2 edits its default list with `{ prepend }`; @types/ssh2 wrongly requires all three keys. */
function prepend<T>(list: T[]): AlgorithmList<T> {
  return { prepend: list } as unknown as AlgorithmList<T>;
}

/**
 * Auth methods in ssh's order: agent keys, then each identity file. Keys are read once so a
 * reconnect does not depend on files still being there. Encrypted keys need the agent.
 */
export function loadAuthMethods(user: string, s: SshAuthSettings): AnyAuthMethod[] {
  const methods: AnyAuthMethod[] = [];
  if (s.agent && !(s.identitiesOnly && s.identityFiles.length)) methods.push({ type: 'agent', username: user, agent: s.agent });
  for (const file of s.identityFiles) {
    let key: Buffer | undefined;
    try {
      // A device or a huge file is refused (exit 2), never read without end.
      key = readBoundedFile(file, { what: 'identity file', max: IDENTITY_FILE_MAX });
    } catch (err) {
      if (err instanceof DdtError) throw err;
      s.onWarning?.(`identity file ${file} not readable (${(err as NodeJS.ErrnoException).code ?? err}); skipped`);
      continue;
    }
    if (key === undefined) {
      s.onWarning?.(`identity file ${file} does not exist; skipped`);
      continue;
    }
    const parsed = ssh2().utils.parseKey(key);
    if (parsed instanceof Error) {
      const why = /encrypt|passphrase/i.test(parsed.message) ? 'encrypted; load it into ssh-agent' : parsed.message;
      s.onWarning?.(`identity file ${file} skipped: ${why}`);
      continue;
    }
    methods.push({ type: 'publickey', username: user, key });
  }
  return methods;
}

// Serialises trust-on-first-use so parallel connections record a new key only once.
let hostKeyLock: Promise<unknown> = Promise.resolve();

async function verifyHostKey(ep: SshEndpoint, s: SshAuthSettings, key: Buffer): Promise<void> {
  const run = hostKeyLock.then(async () => {
    const check = await checkHostKey(s.knownHostsFiles, ep.host, ep.port, '', key);
    const name = knownHostName(ep.host, ep.port);
    const who = ep.label ? `${ep.label} (${name})` : name;
    if (check.status === 'ok') return;
    if (check.status === 'changed') {
      const what = check.revoked ? `is marked @revoked (${check.offending})` : `HAS CHANGED (offending entry ${check.offending})`;
      throw new DdtError(
      'SSH_HOST_KEY_CHANGED',
        `host key of ${who} ${what}: now ${check.keyType} ${check.fingerprint}; possible man-in-the-middle attack, refusing to connect ` +
          `(if the change is expected, remove the old entry: ssh-keygen -R '${name}')`,
      );
    }
    const file = s.knownHostsFiles[0];
    if (!s.acceptNewHostKey || !file) {
      throw new DdtError(
      'SSH_HOST_KEY_UNKNOWN',
        `host key of ${who} is not known: ${check.keyType} ${check.fingerprint}; if that is the right key, add this line to ` +
          `${file ?? '~/.ssh/known_hosts'}: "${check.line}", or run again with --accept-new-host-key`,
      );
    }
    await appendKnownHost(file, ep.host, ep.port, check.keyType, key);
    s.onWarning?.(`permanently added host key of ${who} (${check.keyType} ${check.fingerprint}) to ${file}`);
  });
  hostKeyLock = run.catch(() => undefined);
  return run;
}

function classify(err: Error & { level?: string; code?: unknown }, ep: SshEndpoint, s: SshAuthSettings): DdtError {
  const where = `${ep.label ? `${ep.label} ` : ''}${ep.user}@${knownHostName(ep.host, ep.port)}`;
  if (err.level === 'client-authentication') {
    const tried = [s.agent ? 'ssh-agent' : '', ...s.identityFiles].filter(Boolean).join(', ') || 'nothing';
    return new DdtError('SSH_AUTH', `authentication as ${where} failed (tried: ${tried})`, { cause: err });
  }
  const code = typeof err.code === 'string' ? ` (${err.code})` : '';
  return new DdtError('SSH_CONNECT', `cannot connect to ${where}: ${err.message}${code}`, { cause: err });
}

/** Where the connection runs, and what ends its setup early. */
export interface ConnectVia {
  /** An open stream to the server instead of a TCP connection. */
  sock?: Duplex;
  /** Destroys the connection at once (setup included) and rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Connect and authenticate. `onLost` fires once if the connection later drops (after 'ready');
 * errors after ready are passed to it as the reason.
 */
export async function connectSsh(
  ep: SshEndpoint,
  s: SshAuthSettings,
  auth: AnyAuthMethod[],
  onLost: (client: Client, reason: string) => void,
  via: ConnectVia = {},
): Promise<Client> {
  if (auth.length === 0) {
    throw new DdtError('SSH_NO_AUTH', `no way to authenticate${ep.label ? ` to ${ep.label}` : ''}: no ssh-agent (SSH_AUTH_SOCK) and no usable identity file (-i)`);
  }
  via.signal?.throwIfAborted();
  const preferred = hostKeyPreference(await knownKeyTypes(s.knownHostsFiles, ep.host, ep.port));
  via.signal?.throwIfAborted();
  const client = new (ssh2().Client)();
  return new Promise<Client>((resolve, reject) => {
    let hostKeyError: DdtError | undefined;
    let ready = false;
    let lastError = '';
    const onAbort = () => {
      if (ready) return;
      ready = true;
      reject(via.signal!.reason);
      client.destroy();
      via.sock?.destroy();
    };
    via.signal?.addEventListener('abort', onAbort, { once: true });
    const settled = () => via.signal?.removeEventListener('abort', onAbort);
    client.on('error', (err: Error & { level?: string }) => {
      lastError = err.message;
      if (ready) return; // 'close' follows and reports the loss
      ready = true; // settle once
      settled();
      reject(hostKeyError ?? classify(err, ep, s));
      client.end();
    });
    client.once('ready', () => {
      if (ready) return;
      ready = true;
      settled();
      client.once('close', () => onLost(client, lastError || 'connection closed'));
      resolve(client);
    });
    client.once('close', () => {
      if (ready) return;
      ready = true;
      settled();
      reject(hostKeyError ?? new DdtError('SSH_CONNECT', `connection to ${ep.label ?? knownHostName(ep.host, ep.port)} closed during setup`));
    });
    const config: ConnectConfig = {
      ...(via.sock ? { sock: via.sock } : {}),
      host: ep.host,
      port: ep.port,
      username: ep.user,
      authHandler: auth,
      keepaliveInterval: s.keepaliveMs ?? KEEPALIVE_MAX_MS, // 1 s dropped busy links (ssh2 #474)
      keepaliveCountMax: KEEPALIVE_COUNT_MAX, // the count silentSince dates a loss back by
      readyTimeout: s.readyTimeoutMs ?? 30_000,
      algorithms: {
        cipher: prepend((s.ciphers ?? ['aes128-gcm@openssh.com']) as CipherAlgorithm[]),
        ...(preferred.length ? { serverHostKey: prepend(preferred as ServerHostKeyAlgorithm[]) } : {}),
      },
      hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
        verifyHostKey(ep, s, key).then(
          () => verify(true),
          (err: unknown) => {
            hostKeyError = err instanceof DdtError ? err : new DdtError('SSH_HOST_KEY_UNKNOWN', String(err), { cause: err });
            verify(false);
          },
        );
      },
    };
    try {
      client.connect(config);
      // A channel open, its exec request and a line to a helper are small packets written one
      // after the other; with Nagle's algorithm on, each waits for the ACK of the one before,
      // which the server delays by up to 40 ms (one exec on an open connection to a loopback
      // sshd: ≈ 48 ms with it, ≈ 5 ms without). Bulk data goes in whole packets either way.
      // (A ProxyCommand's pipe has no such setting; ssh2 skips it there.)
      client.setNoDelay(true);
    } catch (err) {
      ready = true;
      settled();
      reject(classify(err as Error, ep, s));
    }
  });
}
