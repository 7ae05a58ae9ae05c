// Shared by the end-to-end tests that run the CLI against the harness sshd.
import { existsSync, readFileSync } from 'node:fs';
import type { TestSshd } from '../harness/sshd.js';

/** ddt's options to reach a harness sshd. */
export function sshArgs(s: TestSshd, extra: string[] = []): string[] {
  return ['-p', String(s.port), '-i', s.clientKeyPath, '--known-hosts', s.knownHostsPath, ...extra];
}

/**
 * TCP connections the sshd accepted while `until` was pending, from its log, where every one is
 * counted (no sampling can miss a short one): how many in all, and the most at once.
 */
export async function countConnections(s: TestSshd, until: Promise<unknown>): Promise<{ total: number; most: number }> {
  const start = readFileSync(s.logPath, 'utf8').length;
  await until.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 200)); // sshd logs a close a moment after it
  const log = readFileSync(s.logPath, 'utf8').slice(start).split(/\r?\n/);
  const open = new Set<string>();
  let total = 0;
  let most = 0;
  for (const line of log) {
    const opened = /^Connection from \S+ port (\d+) on /.exec(line);
    const closed = /^(?:Disconnected from|Connection closed by|Connection reset by|Received disconnect from|Timeout before authentication for) (?:(?:invalid )?user \S+ )?\S+ port (\d+)/.exec(line);
    if (opened) {
      total++;
      open.add(opened[1]!);
      most = Math.max(most, open.size);
    } else if (closed) open.delete(closed[1]!);
  }
  return { total, most };
}

/** Blocks a journal records as verified so far (0 before it exists). */
export function verifiedCount(journal: string): number {
  return existsSync(journal) ? (readFileSync(journal, 'utf8').match(/"state":"verified"/g) ?? []).length : 0;
}

/** Wait until a running job's journal has `n` verified blocks. */
export async function waitForVerified(journal: string, n: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (verifiedCount(journal) < n) {
    if (Date.now() > deadline) throw new Error(`fewer than ${n} blocks verified in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
