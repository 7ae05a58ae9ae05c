// A private OpenSSH server on loopback for integration tests and benchmarks:
// the implementation is src/demo/private-sshd.ts (`ddt demo` runs the same
// one); this adapter ties it to the harness's cleanup registry and temp dirs,
// so a crashed or interrupted test run leaves no sshd or key behind.
//
// `minimalHost` turns it into a host whose sessions see only busybox (see
// minimal-host.ts); createUser (users.ts) and startBastionPair (bastion.ts)
// build the other remote-host fixtures on it.

import { startPrivateSshd, type PrivateSshd, type SshdOptions } from '../../src/demo/private-sshd.js';
import type { SshPoolOptions } from '../../src/transport/ssh-pool.js';
import { readFileSync } from 'node:fs';
import { registerCleanup, registerDiagnostic } from './hooks.js';
import { makeTempDir, removeTempDir } from './loop.js';
import { prepareMinimalHost, type MinimalHostOptions, type MinimalHostParts } from './minimal-host.js';

export { childPids, sshdAvailable, type SshdOptions } from '../../src/demo/private-sshd.js';

export interface TestSshdOptions extends SshdOptions {
  /** Sessions see only busybox (root logins only); `true` links every applet. */
  minimalHost?: boolean | MinimalHostOptions;
}

export interface TestSshd extends PrivateSshd {
  /** Set when started with `minimalHost`: the applet dir and the programs in it. */
  minimalHost?: MinimalHostParts;
}

export async function startSshd(opts: TestSshdOptions = {}): Promise<TestSshd> {
  const { minimalHost, ...sshdOpts } = opts;
  let minimal: { dir: string; parts: MinimalHostParts } | undefined;
  if (minimalHost) {
    const dir = await makeTempDir('ddt-minimal-');
    try {
      const parts = await prepareMinimalHost(dir, minimalHost === true ? {} : minimalHost);
      minimal = { dir, parts };
    } catch (err) {
      await removeTempDir(dir);
      throw err;
    }
    // The wrapper must come first: sshd keeps the first ForceCommand that applies.
    sshdOpts.extraConfig = [...minimal.parts.extraConfig, ...(sshdOpts.extraConfig ?? [])];
  }
  const sshd = await startPrivateSshd(sshdOpts, { registerCleanup, makeTempDir, removeTempDir }).catch(async (err: unknown) => {
    if (minimal) await removeTempDir(minimal.dir);
    throw err;
  });
  const unregister = registerDiagnostic(() => {
    const lines = readFileSync(sshd.logPath, 'utf8').trimEnd().split('\n').slice(-40);
    return `--- private sshd on port ${sshd.port}, last ${lines.length} log lines:\n${lines.join('\n')}`;
  });
  const stop = sshd.stop;
  return {
    ...sshd,
    minimalHost: minimal?.parts,
    stop: async () => {
      unregister();
      await stop();
      if (minimal) await removeTempDir(minimal.dir);
    },
  };
}

/** A private sshd whose sessions see only busybox: `startSshd({ minimalHost: opts })`. */
export function startMinimalHost(opts: MinimalHostOptions = {}, sshdOpts: SshdOptions = {}): Promise<TestSshd> {
  return startSshd({ ...sshdOpts, minimalHost: opts });
}

/** ssh2 pool options that reach a harness sshd with its throwaway key and known_hosts [1 × 4]. */
export function poolOptions(sshd: TestSshd, over: Partial<SshPoolOptions> = {}): SshPoolOptions {
  return {
    hosts: [sshd.host],
    port: sshd.port,
    user: sshd.user,
    identityFiles: [sshd.clientKeyPath],
    knownHostsFiles: [sshd.knownHostsPath],
    acceptNewHostKey: false,
    connections: 1,
    channelsPerConnection: 4,
    ...over,
  };
}
