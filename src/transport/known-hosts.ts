/**
 * OpenSSH known_hosts, read and appended the way ssh does it (no maintained npm package parses
 * it). Supports plain names, comma lists, wildcards and negation, `[host]:port` for
 * non-22 ports, hashed `|1|salt|hmac` entries, `@revoked` (a revoked key is refused like a
 * changed one) and ignores `@cert-authority` (ddt does not do host certificates).
 */
import { createHash, createHmac } from 'node:crypto';
import { appendFile, mkdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { readBoundedFile, SSH_FILE_MAX } from './bounded-file.js';

export type HostKeyStatus = 'ok' | 'unknown' | 'changed';

export interface HostKeyCheck {
  status: HostKeyStatus;
  /** `SHA256:…` as `ssh-keygen -l` prints it. */
  fingerprint: string;
  /** The known_hosts line that would record this key. */
  line: string;
  /** The key type inside the blob (`ssh-ed25519`, `ssh-rsa`, …). */
  keyType: string;
  /** Where the conflicting (changed) or revoking entry is: `file:line`. */
  offending?: string;
  revoked?: boolean;
  /** Key types recorded for this host (to prefer them in negotiation). */
  knownTypes: string[];
}

/** UserKnownHostsFile then GlobalKnownHostsFile defaults; the first is where keys are added. */
export function defaultKnownHostsFiles(): string[] {
  const ssh = join(homedir(), '.ssh');
  return [
    join(ssh, 'known_hosts'),
    join(ssh, 'known_hosts2'),
    '/etc/ssh/ssh_known_hosts',
    '/etc/ssh/ssh_known_hosts2',
  ];
}

/** The name ssh looks up: `host` on port 22, `[host]:port` otherwise; lowercase like ssh. */
export function knownHostName(host: string, port = 22): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

export function fingerprintOf(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** The algorithm name stored first in an SSH public key blob (RFC 4253 §6.6). */
export function keyTypeOfBlob(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const n = blob.readUInt32BE(0);
  if (n === 0 || n > 64 || 4 + n > blob.length) return undefined;
  return blob.subarray(4, 4 + n).toString('latin1');
}

function globMatch(pattern: string, s: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(s);
}

/** Does a host field (`a,b,!c`, `[h]:2222`, `|1|salt|hash`) match `name`? */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  let matched = false;
  for (const raw of field.split(',')) {
    const neg = raw.startsWith('!');
    const pat = (neg ? raw.slice(1) : raw).toLowerCase();
    if (pat && globMatch(pat, name)) {
      if (neg) return false; // a negated match vetoes the whole line, as in ssh
      matched = true;
    }
  }
  return matched;
}

interface Entry {
  marker?: string;
  hosts: string;
  keyType: string;
  blob: Buffer;
  where: string;
}

function parseLine(text: string, where: string): Entry | undefined {
  const t = text.trim();
  if (!t || t.startsWith('#')) return undefined;
  const f = t.split(/\s+/);
  let marker: string | undefined;
  if (f[0].startsWith('@')) marker = f.shift();
  if (f.length < 3) return undefined;
  const blob = Buffer.from(f[2], 'base64');
  if (blob.length === 0) return undefined;
  return { marker, hosts: f[0], keyType: f[1], blob, where };
}

async function readEntries(files: string[]): Promise<Entry[]> {
  const out: Entry[] = [];
  for (const file of files) {
    // A missing file holds no keys, like ssh; a device or a huge file is refused (exit 2).
    const text = readBoundedFile(file, { what: 'known_hosts file', max: SSH_FILE_MAX })?.toString('utf8');
    if (text === undefined) continue;
    text.split('\n').forEach((l, i) => {
      const e = parseLine(l, `${file}:${i + 1}`);
      if (e) out.push(e);
    });
  }
  return out;
}

export async function checkHostKey(
  files: string[],
  host: string,
  port: number,
  keyType: string,
  keyBlob: Buffer,
): Promise<HostKeyCheck> {
  const name = knownHostName(host, port);
  // RSA keys negotiate as rsa-sha2-* but are stored as ssh-rsa: trust the blob.
  const type = keyTypeOfBlob(keyBlob) ?? keyType;
  const base = {
    fingerprint: fingerprintOf(keyBlob),
    line: `${name} ${type} ${keyBlob.toString('base64')}`,
    keyType: type,
  };
  const entries = (await readEntries(files)).filter((e) => hostFieldMatches(e.hosts, name));
  const revoked = entries.find((e) => e.marker === '@revoked' && e.blob.equals(keyBlob));
  if (revoked) return { ...base, status: 'changed', revoked: true, offending: revoked.where, knownTypes: [] };
  const plain = entries.filter((e) => e.marker === undefined);
  const knownTypes = [...new Set(plain.map((e) => e.keyType))];
  if (plain.some((e) => e.blob.equals(keyBlob))) return { ...base, status: 'ok', knownTypes };
  // Same algorithm, other key: the host key changed. Another algorithm only: ssh treats it as
  // not yet known (it would have preferred the known type if the server still offered it).
  const conflict = plain.find((e) => e.keyType === type);
  if (conflict) return { ...base, status: 'changed', offending: conflict.where, knownTypes };
  return { ...base, status: 'unknown', knownTypes };
}

/** Key types recorded for host:port, to put first in host key negotiation as ssh does. */
export async function knownKeyTypes(files: string[], host: string, port: number): Promise<string[]> {
  const name = knownHostName(host, port);
  const entries = (await readEntries(files)).filter((e) => e.marker === undefined && hostFieldMatches(e.hosts, name));
  return [...new Set(entries.map((e) => e.keyType))];
}

/** Record a key (trust on first use). Creates ~/.ssh (0700) and the file (0600) like ssh. */
export async function appendKnownHost(file: string, host: string, port: number, keyType: string, keyBlob: Buffer): Promise<string> {
  const type = keyTypeOfBlob(keyBlob) ?? keyType;
  const line = `${knownHostName(host, port)} ${type} ${keyBlob.toString('base64')}`;
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  let prefix = '';
  try {
    const st = await stat(file);
    if (st.size > 0) {
      const text = await readFile(file, 'utf8');
      if (!text.endsWith('\n')) prefix = '\n';
    }
  } catch {
    /* new file */
  }
  await appendFile(file, `${prefix}${line}\n`, { mode: 0o600 });
  return line;
}
