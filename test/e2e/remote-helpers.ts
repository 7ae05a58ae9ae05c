// Shared by the end-to-end tests that run the CLI against the harness sshd.
import { existsSync, readFileSync } from 'node:fs';
import type { TestSshd } from '../harness/sshd.js';
import { establishedTo } from '../harness/tcp.js';

/** ddt's options to reach a harness sshd. */
export function sshArgs(s: TestSshd, extra: string[] = []): string[] {
  return ['-p', String(s.port), '-i', s.clientKeyPath, '--known-hosts', s.knownHostsPath, ...extra];
}

/** Most TCP connections to `port` seen (every 20 ms) while `until` is pending. */
export async function sampleConnections(port: number, until: Promise<unknown>): Promise<number> {
  let max = 0;
  let done = false;
  void until.finally(() => (done = true));
  while (!done) {
    max = Math.max(max, establishedTo(port).length);
    await new Promise((r) => setTimeout(r, 20));
  }
  return max;
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
