// What the results were measured on.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

function out(cmd: string, args: string[]): string {
  try {
    // `ssh -V` answers on stderr
    const r = execFileSync('sh', ['-c', '"$0" "$@" 2>&1', cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return r.trim();
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? '').trim() || 'unknown';
  }
}

export function machine(root: string): Record<string, string> {
  const os = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown';
  const dirty = out('git', ['-C', root, 'status', '--porcelain']).split('\n').filter(Boolean).length;
  return {
    cores: String(cpus().length),
    'CPU model': cpus()[0]?.model ?? 'unknown',
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os,
    kernel: out('uname', ['-r']),
    node: process.version,
    OpenSSH: out('ssh', ['-V']),
    rsync: out('rsync', ['--version']).split('\n')[0] ?? '',
    'ddt source': `git ${out('git', ['-C', root, 'rev-parse', '--short', 'HEAD'])} + ${dirty} uncommitted paths (working tree compiled into a private snapshot at the start)`,
    'load average at start': loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}
