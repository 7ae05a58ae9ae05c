/**
 * Run one short remote command on a pooled channel and collect its output. For setup and
 * housekeeping only (install, probe, cleanup): block traffic uses long-lived workers.
 */
import type { SshPool } from '../transport/ssh-pool.js';
import { DdtError } from '../errors.js';

export interface RunResult {
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

const MAX_OUTPUT = 1 << 20;

/** `onOpen`: the command's channel is open (it holds its slot on the connection from now on). */
export async function runRemote(pool: SshPool, cmd: string, opts: { stdin?: Buffer; signal?: AbortSignal; onOpen?: () => void } = {}): Promise<RunResult> {
  let code: number | null = null;
  let signal: string | undefined;
  const onExit = (c: number | null, s?: string): void => {
    code = c;
    signal = s ?? undefined;
  };
  const ch = await pool.exec(cmd, { signal: opts.signal, onExit });
  opts.onOpen?.();
  try {
    return await new Promise<RunResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      const keep = (into: Buffer[]) => (b: Buffer) => {
        size += b.length;
        if (size <= MAX_OUTPUT) into.push(b); // a runaway command must not eat our memory
      };
      ch.on('data', keep(out));
      ch.stderr.on('data', keep(err));
      ch.on('error', (e: Error) => reject(new DdtError('REMOTE_COMMAND', `remote command failed: ${e.message}`, { cause: e })));
      ch.on('close', () => resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
      const onAbort = () => reject(opts.signal!.reason);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (opts.stdin) ch.end(opts.stdin);
      else ch.end();
    });
  } finally {
    await pool.release(ch);
  }
}

/** How a command ended that did not exit 0, in words: its exit code, the signal, or neither. */
export function howEnded(res: RunResult): string {
  return res.code !== null ? `exit ${res.code}` : res.signal ? `killed by ${res.signal}` : 'the channel closed without an exit status';
}

/** Last non-empty stderr line, for one-line error messages. */
export function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines[lines.length - 1] ?? '';
}
