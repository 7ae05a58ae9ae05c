// A target host reachable only through a bastion (jump host), for tests of
// ProxyJump and ProxyCommand.
//
// Both private sshds run in a network namespace of their own: the bastion on
// 127.0.0.1:<bastion port>, the target on 127.0.0.2:<target port>. A relay
// makes the bastion's address and port reachable on this side too; nothing
// makes the target's. Both ports were free here when chosen, so a direct
// connection to the target's address and port meets a closed port on this
// side's own loopback: refused at once, and no packet leaves the machine
// (a routed address might go out through the default route).

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registerDiagnostic } from './hooks.js';
import { makeTempDir, removeTempDir } from './loop.js';
import { createNetns, netnsAvailable, relayInto, type NetworkNamespace, type Relay } from './netns.js';
import { commandPath, haveCommand } from './real.js';
import { sshdAvailable, startSshd, type TestSshd, type TestSshdOptions } from './sshd.js';

export const BASTION_HOST = '127.0.0.1';
export const TARGET_HOST = '127.0.0.2';

/** What a bastion pair needs: root, sshd, iproute2, busybox (nc) and the ssh client. */
export function bastionAvailable(): boolean {
  return sshdAvailable() && netnsAvailable() && haveCommand('busybox') && haveCommand('ssh');
}

export interface SshConfigOptions {
  /** How `target` goes through `bastion` [jump]: `ProxyJump bastion`, or `ProxyCommand ssh -F <this file> -W %h:%p bastion`. */
  via?: 'jump' | 'command';
  /** UserKnownHostsFile of both entries [the pair's knownHostsPath]. */
  knownHostsPath?: string;
  /** File name inside the pair's dir [ssh_config-<via>]. */
  name?: string;
}

export interface BastionPair {
  /** The jump host: reachable from here at host:port, logs at LogLevel DEBUG1 (forwarding requests show). */
  bastion: TestSshd;
  /** Reachable only through the bastion; its own sshArgs() and knownHostsPath name 127.0.0.2 and its port. */
  target: TestSshd;
  /** The network namespace both run in. */
  netns: string;
  /** Temp dir of the pair's known_hosts and ssh config files. */
  dir: string;
  /** The host keys of both, as `[host]:port key` lines. */
  knownHostsPath: string;
  /** Only the target's host key: the bastion's is unknown with it. */
  targetOnlyKnownHostsPath: string;
  /** ssh config with Host bastion and Host target (ProxyJump bastion). */
  sshConfigPath: string;
  /** The same with `ProxyCommand ssh -F <file> -W %h:%p bastion`. */
  proxyCommandConfigPath: string;
  /** Write another ssh config variant; returns its path. */
  writeSshConfig(opts?: SshConfigOptions): Promise<string>;
  stop(): Promise<void>;
}

function hostEntry(alias: string, sshd: TestSshd, knownHostsPath: string, extra: string[]): string[] {
  return [
    `Host ${alias}`,
    `  HostName ${sshd.host}`,
    `  Port ${sshd.port}`,
    `  User ${sshd.user}`,
    `  IdentityFile ${sshd.clientKeyPath}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${knownHostsPath}`,
    ...extra.map((line) => `  ${line}`),
  ];
}

export function renderSshConfig(path: string, bastion: TestSshd, target: TestSshd, knownHostsPath: string, via: 'jump' | 'command'): string {
  const ssh = commandPath('ssh') ?? 'ssh';
  const proxy = via === 'jump' ? 'ProxyJump bastion' : `ProxyCommand ${ssh} -F ${path} -W %h:%p bastion`;
  return [
    `# ${via === 'jump' ? 'ProxyJump' : 'ProxyCommand'}: target is reachable only through bastion.`,
    ...hostEntry('bastion', bastion, knownHostsPath, []),
    ...hostEntry('target', target, knownHostsPath, [proxy]),
    '',
  ].join('\n');
}

/**
 * Start a bastion and a target behind it. `bastion` and `target` options go
 * to each startSshd (e.g. `target: { minimalHost: true }`). Stop with stop();
 * the cleanup registry removes everything at exit otherwise.
 */
export async function startBastionPair(opts: { bastion?: TestSshdOptions; target?: TestSshdOptions } = {}): Promise<BastionPair> {
  const undo: (() => Promise<void>)[] = [];
  // Every step runs even when one fails: a stuck sshd must not keep the namespace.
  const stop = async () => {
    let failure: unknown;
    for (const step of undo.splice(0).reverse()) await step().catch((err: unknown) => (failure ??= err));
    if (failure) throw failure;
  };
  try {
    const dir = await makeTempDir('ddt-bastion-');
    undo.push(() => removeTempDir(dir));
    const ns: NetworkNamespace = await createNetns();
    undo.push(() => ns.remove());
    const target = await startSshd({ ...opts.target, listen: [TARGET_HOST], netns: ns.name });
    undo.push(() => target.stop());
    const bastion = await startSshd({
      ...opts.bastion,
      listen: [BASTION_HOST],
      netns: ns.name,
      extraConfig: ['LogLevel DEBUG1', ...(opts.bastion?.extraConfig ?? [])],
    });
    undo.push(() => bastion.stop());
    const relay: Relay = await relayInto(ns, BASTION_HOST, bastion.port, dir);
    undo.push(() => relay.stop());
    const unregister = registerDiagnostic(() => `--- bastion pair in network namespace ${ns.name}: bastion ${BASTION_HOST}:${bastion.port}, target ${TARGET_HOST}:${target.port}`);
    undo.push(async () => unregister());

    const knownHostsPath = join(dir, 'known_hosts');
    const targetOnlyKnownHostsPath = join(dir, 'known_hosts-target-only');
    const targetLine = `[${TARGET_HOST}]:${target.port} ${target.hostPublicKey}\n`;
    await writeFile(knownHostsPath, `[${BASTION_HOST}]:${bastion.port} ${bastion.hostPublicKey}\n${targetLine}`);
    await writeFile(targetOnlyKnownHostsPath, targetLine);
    const writeSshConfig = async ({ via = 'jump', knownHostsPath: known = knownHostsPath, name }: SshConfigOptions = {}) => {
      const path = join(dir, name ?? `ssh_config-${via}`);
      await writeFile(path, renderSshConfig(path, bastion, target, known, via));
      return path;
    };
    return {
      bastion,
      target,
      netns: ns.name,
      dir,
      knownHostsPath,
      targetOnlyKnownHostsPath,
      sshConfigPath: await writeSshConfig({ via: 'jump' }),
      proxyCommandConfigPath: await writeSshConfig({ via: 'command' }),
      writeSshConfig,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
