// A private OpenSSH server on loopback for integration tests and benchmarks:
// the implementation is src/demo/private-sshd.ts (`ddt demo` runs the same
// one); this adapter ties it to the harness's cleanup registry and temp dirs,
// so a crashed or interrupted test run leaves no sshd or key behind.

import { startPrivateSshd, type PrivateSshd, type SshdOptions } from '../../src/demo/private-sshd.js';
import type { SshPoolOptions } from '../../src/transport/ssh-pool.js';
import { readFileSync } from 'node:fs';
import { registerCleanup, registerDiagnostic } from './hooks.js';
import { makeTempDir, removeTempDir } from './loop.js';

export { childPids, sshdAvailable, type SshdOptions } from '../../src/demo/private-sshd.js';

export type TestSshd = PrivateSshd;

export async function startSshd(opts: SshdOptions = {}): Promise<TestSshd> {
  const sshd = await startPrivateSshd(opts, { registerCleanup, makeTempDir, removeTempDir });
  const unregister = registerDiagnostic(() => {
    const lines = readFileSync(sshd.logPath, 'utf8').trimEnd().split('\n').slice(-40);
    return `--- private sshd on port ${sshd.port}, last ${lines.length} log lines:\n${lines.join('\n')}`;
  });
  const stop = sshd.stop;
  return {
    ...sshd,
    stop: async () => {
      unregister();
      await stop();
    },
  };
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
