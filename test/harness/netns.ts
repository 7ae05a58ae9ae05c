// Network namespaces for fixtures that need hosts the test process cannot
// reach directly, and a TCP relay that makes one port inside such a namespace
// reachable on the loopback address outside it.
//
// A namespace made here has only its own loopback: no veth, no route, no
// address that exists anywhere else, so no packet of a test can leave the
// machine through it. Everything is registered with the cleanup registry: the
// processes inside are killed by PID, then the namespace is deleted. Names
// carry the creating PID, so a later run can sweep what a killed one left.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { registerCleanup } from './hooks.js';
import { commandPath, haveCommand, haveRoot } from './real.js';
import { until } from './until.js';

const execFileP = promisify(execFile);
const ip = () => commandPath('ip') ?? 'ip';

let created = 0;

/** Root and iproute2: what network namespaces need. */
export function netnsAvailable(): boolean {
  return haveRoot() && haveCommand('ip');
}

/** PIDs of the processes in a namespace. */
export function netnsPids(name: string): number[] {
  try {
    return execFileSync(ip(), ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // the namespace is gone
  }
}

function kill(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

export interface NetworkNamespace {
  name: string;
  /** Argv prefix that runs a command inside the namespace. */
  exec: string[];
  /** Kill what still runs inside, then delete the namespace. */
  remove(): Promise<void>;
}

const OURS = /^ddt-(\d+)-\d+$/;

/** Whether the process that made a `ddt-<pid>-<n>` resource is gone (then so is its cleanup). */
export function ownerGone(name: string): boolean {
  const pid = OURS.exec(name)?.[1];
  return pid !== undefined && Number(pid) !== process.pid && !existsSync(`/proc/${pid}`);
}

// Processes outside a namespace that were started to enter it (a relay): their command line names it.
function entering(name: string): number[] {
  const needle = Buffer.from(`\0netns\0exec\0${name}\0`);
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        return readFileSync(`/proc/${entry}/cmdline`).includes(needle);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * Remove the namespaces (and what runs in or relays into them) of test
 * processes that were killed before their cleanup could run.
 */
export function sweepStaleNetns(): void {
  let names: string[];
  try {
    names = execFileSync(ip(), ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((line) => line.split(' ')[0]);
  } catch {
    return;
  }
  for (const name of names.filter(ownerGone)) {
    kill([...entering(name), ...netnsPids(name)], 'SIGKILL');
    try {
      execFileSync(ip(), ['netns', 'delete', name], { stdio: 'ignore' });
    } catch {
      // another process swept it first
    }
  }
}

/** A fresh namespace with its loopback up, named uniquely for this process. */
export async function createNetns(): Promise<NetworkNamespace> {
  sweepStaleNetns();
  const name = `ddt-${process.pid}-${++created}`;
  await execFileP(ip(), ['netns', 'add', name]);
  const removeNow = () => {
    kill(netnsPids(name), 'SIGKILL');
    execFileSync(ip(), ['netns', 'delete', name], { stdio: 'ignore' });
  };
  const unregister = registerCleanup(removeNow);
  try {
    await execFileP(ip(), ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    unregister();
    removeNow();
    throw err;
  }
  return {
    name,
    exec: [ip(), 'netns', 'exec', name],
    remove: async () => {
      unregister();
      kill(netnsPids(name), 'SIGTERM');
      await until(`processes in namespace ${name} to end`, () => netnsPids(name).length === 0, 3000).catch(() =>
        kill(netnsPids(name), 'SIGKILL'),
      );
      await execFileP(ip(), ['netns', 'delete', name]);
    },
  };
}

// Hands each accepted connection, as its stdin and stdout, to a new process
// of the given command, which connects it onward (busybox nc inside the
// namespace): the relay itself never touches the bytes.
const RELAY = `
const net = require('node:net');
const { spawn } = require('node:child_process');
const [host, port, ...command] = process.argv.slice(1);
const server = net.createServer({ pauseOnConnect: true }, (socket) => {
  const child = spawn(command[0], command.slice(1), { stdio: [socket, socket, 'ignore'] });
  child.on('error', () => {});
  socket.destroy();
});
server.on('error', (err) => { console.log('relay failed: ' + err.message); process.exit(1); });
server.listen({ host, port: Number(port), exclusive: true }, () => console.log('relay listening'));
`;

export interface Relay {
  pid: number;
  stop(): Promise<void>;
}

/**
 * Listen on host:port here and connect each connection to the same host:port
 * inside the namespace. `logDir` receives relay.log.
 */
export async function relayInto(ns: NetworkNamespace, host: string, port: number, logDir: string): Promise<Relay> {
  const busybox = commandPath('busybox');
  if (!busybox) throw new Error('the relay into a network namespace needs busybox (nc)');
  const log = join(logDir, 'relay.log');
  const fd = openSync(log, 'w');
  const child = spawn(process.execPath, ['-e', RELAY, host, String(port), ...ns.exec, busybox, 'nc', host, String(port)], {
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error('cannot spawn the relay');
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve(void (exited = true))));
  const unregister = registerCleanup(() => kill([pid], 'SIGKILL'));
  const stop = async () => {
    unregister();
    if (!exited) {
      child.ref();
      kill([pid], 'SIGTERM');
      await exit;
    }
  };
  try {
    await until(`relay on ${host}:${port}`, async () => {
      const text = await readFile(log, 'utf8');
      if (exited || text.includes('relay failed')) throw new Error(`relay on ${host}:${port} did not start: ${text.trim()}`);
      return text.includes('relay listening');
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid, stop };
}
