// Shared by the end-to-end tests that run the CLI against the harness sshd.
import { existsSync, readFileSync } from 'node:fs';
import type { TestSshd } from '../harness/sshd.js';
import type { CliRun } from './cli.js';

/** ddt's options to reach a harness sshd. */
export function sshArgs(s: TestSshd, extra: string[] = []): string[] {
  return ['-p', String(s.port), '-i', s.clientKeyPath, '--known-hosts', s.knownHostsPath, ...extra];
}

/** A connection the test itself cut on the client side, and where the sshd's log stood then. */
export interface Dropped {
  port: string;
  offset: number;
}

/**
 * TCP connections the sshd accepted while `until` was pending, from its log, where every one is
 * counted (no sampling can miss a short one): how many in all, and the most at once. A connection
 * in `dropped` counts as closed from the log offset where the test killed its client: the sshd's
 * own process for it may log the close only after the listener has logged the replacement, and
 * that lag is the server's, not something the client holds open.
 */
export async function countConnections(s: TestSshd, until: Promise<unknown>, dropped: Dropped[] = []): Promise<{ total: number; most: number }> {
  const start = readFileSync(s.logPath, 'utf8').length;
  await until.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 200)); // sshd logs a close a moment after it
  const log = readFileSync(s.logPath, 'utf8').slice(start).split(/\n/);
  const open = new Set<string>();
  let total = 0;
  let most = 0;
  let offset = start;
  for (const line of log) {
    for (const d of dropped) if (d.offset <= offset) open.delete(d.port);
    offset += line.length + 1;
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

/** Wait until a running job's journal has `n` verified blocks; a timeout says what `run` printed. */
export async function waitForVerified(journal: string, n: number, timeoutMs = 60_000, run?: CliRun): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (verifiedCount(journal) < n) {
    if (Date.now() > deadline) throw new Error(`fewer than ${n} blocks verified in ${timeoutMs} ms${run ? `; the run: ${run.sofar()}` : ''}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
