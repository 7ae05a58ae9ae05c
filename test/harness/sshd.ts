// A private OpenSSH server on loopback for integration tests and benchmarks:
// the implementation is src/demo/private-sshd.ts (`ddt demo` runs the same
// one); this adapter ties it to the harness's cleanup registry and temp dirs,
// so a crashed or interrupted test run leaves no sshd or key behind.

import { startPrivateSshd, type PrivateSshd, type SshdOptions } from '../../src/demo/private-sshd.js';
import type { SshPoolOptions } from '../../src/transport/ssh-pool.js';
import { registerCleanup } from './hooks.js';
import { makeTempDir, removeTempDir } from './loop.js';

export { childPids, sshdAvailable, type SshdOptions } from '../../src/demo/private-sshd.js';

export type TestSshd = PrivateSshd;

export function startSshd(opts: SshdOptions = {}): Promise<TestSshd> {
  return startPrivateSshd(opts, { registerCleanup, makeTempDir, removeTempDir });
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
