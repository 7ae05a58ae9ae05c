/**
 * Which processes on this host have a file open, from /proc/PID/fd: a run keeps its journal open
 * from its first record to its end, so a journal held open is a run still going (a user sees
 * only their own processes' descriptors; root sees all).
 */
import { readdirSync, readlinkSync, realpathSync } from 'node:fs';

/** PIDs of the other processes that have `path` open. */
export function processesHolding(path: string): number[] {
  let target: string;
  try {
    target = realpathSync(path);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${name}/fd`);
    } catch {
      continue; // gone meanwhile, or not ours to see
    }
    if (fds.some((fd) => linkOf(`/proc/${name}/fd/${fd}`) === target)) pids.push(Number(name));
  }
  return pids;
}

function linkOf(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
