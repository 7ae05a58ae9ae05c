// Running the OpenSSH client (or sftp) in tests: never throws for a failed
// command, so a test can assert on the exit code and messages it expects.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Options every fixture test wants: no prompts, no agent, no user config of this machine. */
export const BATCH = ['-o', 'BatchMode=yes', '-o', 'IdentityAgent=none'];

/** Run `program args…` (ssh by default) to its end, at most `timeoutMs`. */
export function runSsh(args: string[], { program = 'ssh', timeoutMs = 30_000 } = {}): Promise<SshResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(program, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      // A timeout or signal has no numeric code: -1, never mistaken for success.
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Start a long-running remote command; resolves once it printed `ready <its PID>`. */
export function sshSession(args: string[]): Promise<{ child: ChildProcess; remotePid: number }> {
  const child = spawn('ssh', [...args, 'echo ready $$; exec sleep 60'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (data: Buffer) => {
      const ready = /ready (\d+)/.exec(data.toString());
      if (ready) resolve({ child, remotePid: Number(ready[1]) });
    });
    child.once('exit', (code) => reject(new Error(`ssh session exited early (${code}): ${stderr.trim()}`)));
  });
}

/** The state letter of /proc/PID/stat (R, S, D, T, Z, …), or '' when the process is gone. */
export function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] ?? '';
  } catch {
    return '';
  }
}

/** Gone, or a zombie waiting for init to reap it. */
export function processGone(pid: number): boolean {
  const state = processState(pid);
  return state === '' || state === 'Z';
}
