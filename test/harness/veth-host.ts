// A private sshd in a network namespace of its own, reachable from here over a veth pair whose
// link a test can take down and bring back: a host whose network goes away under a run.
//
// The pair's addresses are a /30 of 10.231.0.0/16 chosen from this process's PID (one not
// already on an interface here), so nothing routed elsewhere is ever addressed: the only host
// at the other end is the namespace. Deleting the namespace deletes the pair.

import { execFile, execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { registerDiagnostic } from './hooks.js';
import { createNetns, netnsAvailable, type NetworkNamespace } from './netns.js';
import { commandPath } from './real.js';
import { sshdAvailable, startSshd, type TestSshd } from './sshd.js';

const execFileP = promisify(execFile);
const ip = () => commandPath('ip') ?? 'ip';
let made = 0;

export function vethHostAvailable(): boolean {
  return sshdAvailable() && netnsAvailable();
}

export interface VethHost {
  sshd: TestSshd;
  ns: NetworkNamespace;
  /** The sshd's address (inside the namespace). */
  host: string;
  /** The sshd's host key as known_hosts has it for `host`. */
  knownHostsPath: string;
  /** Take the namespace's end of the link down (packets vanish, as with a pulled cable). */
  linkDown(): Promise<void>;
  linkUp(): Promise<void>;
  stop(): Promise<void>;
}

/** A /30 nobody here uses yet: [this side, the namespace's side]. */
function freeSubnet(): [string, string] {
  const used = execFileSync(ip(), ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
  for (let k = 0; k < 16384; k++) {
    const n = (process.pid * 7 + made * 131 + k) % 16384;
    const base = `10.231.${n >> 6}.${(n & 63) * 4}`;
    const [a, b, c] = base.split('.');
    const prefix = `${a}.${b}.${c}.`;
    const d = (n & 63) * 4;
    if (!used.includes(` ${prefix}${d + 1}/`) && !used.includes(` ${prefix}${d + 2}/`)) return [`${prefix}${d + 1}`, `${prefix}${d + 2}`];
  }
  throw new Error('no free /30 in 10.231.0.0/16');
}

export async function startVethHost(): Promise<VethHost> {
  const ns = await createNetns();
  try {
    const id = `${process.pid % 100000}${++made}`;
    const here = `dvh${id}`.slice(0, 15);
    const there = `dvn${id}`.slice(0, 15);
    const [hereAddr, thereAddr] = freeSubnet();
    await execFileP(ip(), ['link', 'add', here, 'type', 'veth', 'peer', 'name', there, 'netns', ns.name]);
    await execFileP(ip(), ['addr', 'add', `${hereAddr}/30`, 'dev', here]);
    await execFileP(ip(), ['-n', ns.name, 'addr', 'add', `${thereAddr}/30`, 'dev', there]);
    await execFileP(ip(), ['link', 'set', here, 'up']);
    await execFileP(ip(), ['-n', ns.name, 'link', 'set', there, 'up']);
    // Every address of the namespace (its loopback and its end of the pair): the port is chosen
    // free on this side, where the namespace's address does not exist.
    const sshd = await startSshd({ listen: ['0.0.0.0'], netns: ns.name });
    const knownHostsPath = join(sshd.dir, 'known_hosts-veth');
    await writeFile(knownHostsPath, `[${thereAddr}]:${sshd.port} ${sshd.hostPublicKey}\n`);
    const unregister = registerDiagnostic(() => `--- veth host ${thereAddr}:${sshd.port} in namespace ${ns.name}`);
    return {
      sshd,
      ns,
      host: thereAddr,
      knownHostsPath,
      linkDown: async () => void (await execFileP(ip(), ['-n', ns.name, 'link', 'set', there, 'down'])),
      linkUp: async () => void (await execFileP(ip(), ['-n', ns.name, 'link', 'set', there, 'up'])),
      stop: async () => {
        unregister();
        await sshd.stop();
        await ns.remove();
      },
    };
  } catch (err) {
    await ns.remove();
    throw err;
  }
}
