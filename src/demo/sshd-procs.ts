// Processes of a private sshd, from /proc: its children and the sessions that left its tree.
import { readdirSync, readFileSync } from 'node:fs';

function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 4 (ppid) follows "pid (comm) state"; comm may contain spaces
    // and parentheses, so parse after the last ')'.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined; // gone meanwhile
  }
}

/** Direct children of `pid`, from a scan of /proc. */
export function childPids(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((child) => parentPid(child) === pid);
}

export function descendantPids(pid: number): number[] {
  const all: number[] = [];
  for (let level = childPids(pid); level.length > 0; level = level.flatMap(childPids)) all.push(...level);
  return all;
}

export function alive(pid: number): boolean {
  try {
    // A zombie still has a /proc entry but is dead for our purposes.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

// Session processes whose connection was killed are re-parented to init and
// drop out of the tree, but they keep the environment sshd gave them.
export function markedPids(marker: string): number[] {
  const needle = Buffer.from(`\0${marker}\0`);
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${name}/environ`)]).includes(needle);
      } catch {
        return false;
      }
    })
    .map(Number);
}

export function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}
