/**
 * Housekeeping of ddt's dirs on the remote host over SFTP: list them, count what they hold,
 * remove a staging dir's block files and then the dir. It runs as the login user, who owns the
 * staging dirs and work dirs (even under `--sudo`, where only the helper runs as root).
 *
 * ssh2-sftp-client does the SFTP requests, but on a session of ddt's own pool (`SshPool.sftp()`)
 * handed to it as its `sftp`, never through its own `connect()`: the pool's connection has
 * already checked the host key against ddt's known_hosts files, gone through the jump hosts or
 * ProxyCommand and logged in with the journal's keys, and it stays within `--connections`; a
 * connection of its own would do none of that. The session is given back with `pool.release`.
 */
import type SftpClient from 'ssh2-sftp-client';
import type { SFTPWrapper } from 'ssh2';
import { DdtError, messageOf } from '../errors.js';
import type { SshPool } from '../transport/ssh-pool.js';

/** A job's staging dir is `<dir>/.ddt-staging-<jobId>`. */
export const STAGING_PREFIX = '.ddt-staging-';
/** The files ddt stages: one per block, named by its index. Nothing else in a staging dir is ours. */
export const STAGED_BLOCK = /^block-(\d+)$/;

/** Files directly in a dir (links and subdirs not counted). */
export interface DirCount {
  files: number;
  bytes: number;
}

/** A staging dir: ddt's block files, and how many other entries (never ours to remove). */
export interface StagingCount extends DirCount {
  others: number;
}

/** What removing a staging dir did: its block files removed; the dir too, when nothing else was in it. */
export interface StagingRemoval extends StagingCount {
  dirRemoved: boolean;
}

export class SftpHousekeeping {
  private constructor(
    private readonly pool: SshPool,
    private readonly channel: SFTPWrapper,
    private readonly client: SftpClient,
  ) {}

  /** An SFTP session of `pool` (one channel until `close`). */
  static async open(pool: SshPool, signal?: AbortSignal): Promise<SftpHousekeeping> {
    const channel = await pool.sftp({ signal });
    // Loaded here, not with the CLI: it loads ssh2 at once (≈ 30 ms of every command's start),
    // and most runs never do housekeeping over SFTP.
    const { default: SftpClient } = await import('ssh2-sftp-client');
    // No-op callbacks: the client's own ssh2 Client never connects, so they never fire, and its
    // defaults would log to the console if they did.
    const client = new SftpClient('ddt-housekeeping', { error: () => undefined, end: () => undefined, close: () => undefined });
    client.sftp = channel;
    return new SftpHousekeeping(pool, channel, client);
  }

  /** Names of the directories (not links to them) in `dir` whose names start with `prefix`; none when `dir` is not a directory. */
  async subdirs(dir: string, prefix: string): Promise<string[]> {
    if ((await this.kind(dir)) !== 'd') return [];
    const entries = await this.call(`list ${dir}`, () => this.client.list(dir, (e) => e.type === 'd' && e.name.startsWith(prefix)));
    return entries.map((e) => e.name).sort();
  }

  /** `d`, `-`, `l`, or false when nothing is there. Never follows a link. */
  kind(path: string): Promise<false | 'd' | '-' | 'l'> {
    return this.call(`stat ${path}`, () => this.client.exists(path));
  }

  /** The regular files directly in `dir` and their bytes; undefined when it is not a directory. */
  async count(dir: string): Promise<DirCount | undefined> {
    if ((await this.kind(dir)) !== 'd') return undefined;
    const files = (await this.call(`list ${dir}`, () => this.client.list(dir))).filter((e) => e.type === '-');
    return { files: files.length, bytes: files.reduce((n, e) => n + e.size, 0) };
  }

  /** A staging dir's block files and other entries; undefined when it is not a directory. */
  async countStaging(dir: string): Promise<StagingCount | undefined> {
    if ((await this.kind(dir)) !== 'd') return undefined;
    const entries = await this.call(`list ${dir}`, () => this.client.list(dir));
    const blocks = entries.filter(isStagedBlock);
    return { files: blocks.length, bytes: blocks.reduce((n, e) => n + e.size, 0), others: entries.length - blocks.length };
  }

  /**
   * Remove a staging dir's block files, then the dir if nothing else is in it: whatever else
   * someone put there is theirs. Undefined when `dir` is not a directory (a link is never
   * followed).
   */
  async removeStaging(dir: string, signal?: AbortSignal): Promise<StagingRemoval | undefined> {
    if ((await this.kind(dir)) !== 'd') return undefined;
    const entries = await this.call(`list ${dir}`, () => this.client.list(dir));
    const blocks = entries.filter(isStagedBlock);
    for (const b of blocks) {
      signal?.throwIfAborted();
      await this.call(`remove ${dir}/${b.name}`, () => this.client.delete(`${dir}/${b.name}`, true));
    }
    const others = entries.length - blocks.length;
    // A file that arrived since the listing keeps the dir: rmdir refuses a dir that is not empty.
    const dirRemoved = others === 0 && (await this.client.rmdir(dir).then(() => true, () => false));
    return { files: blocks.length, bytes: blocks.reduce((n, e) => n + e.size, 0), others, dirRemoved };
  }

  async close(): Promise<void> {
    this.client.sftp = undefined;
    await this.pool.release(this.channel);
  }

  private async call<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw new DdtError('SFTP', `SFTP ${what} on the remote host failed: ${messageOf(err)}`, { cause: err });
    }
  }
}

function isStagedBlock(e: SftpClient.FileInfo): boolean {
  return e.type === '-' && STAGED_BLOCK.test(e.name);
}
