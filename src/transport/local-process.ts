/**
 * Local helper programs (OpenSSH's `ssh`, `rsync`) for the rsync engine: find them on PATH and
 * run one to completion with its output kept (bounded) for error messages.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';

/** Absolute path of an executable on `PATH`, as a shell would find it, or undefined. */
export function findOnPath(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir || !isAbsolute(dir)) continue; // a relative PATH entry depends on the cwd: skip it
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const KEEP = 64 * 1024;

/**
 * Run `cmd args` without a shell; resolves when it exited and its output is drained. An abort
 * ends the process (SIGTERM) and rejects with the signal's reason. `onStdout` hears stdout as it
 * comes (a progress display), besides the kept tail.
 */
export function runProcess(cmd: string, args: string[], opts: { signal?: AbortSignal; env?: NodeJS.ProcessEnv; onStdout?: (text: string) => void } = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason);
      return;
    }
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout = (stdout + s).slice(-KEEP);
      opts.onStdout?.(s);
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-KEEP)));
    const onAbort = () => child.kill('SIGTERM');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (err) => {
      opts.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.once('close', (code, sig) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.signal?.aborted) reject(opts.signal.reason);
      else resolve({ code, signal: sig, stdout, stderr });
    });
  });
}

/**
 * Remove `dir/<prefix>*` directories of ours (same uid, real directories, not symlinks): the
 * private dirs a killed run of the same job left behind.
 */
export async function removeLeftovers(dir: string, prefix: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const path = join(dir, name);
    const st = await lstat(path).catch(() => undefined);
    if (st?.isDirectory() && st.uid === process.getuid?.()) await rm(path, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Last non-empty line of a program's stderr, for one-line error messages. */
export function lastLineOf(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines[lines.length - 1] ?? '';
}
