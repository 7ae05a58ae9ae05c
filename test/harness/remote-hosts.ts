// Remote hosts that are not a plain Debian box with root login, for end-to-end
// runs of the ddt CLI. Each fixture is real (sshd, namespaces, users, sudo),
// is stopped by its stop()/remove(), and is otherwise removed by the cleanup
// registry at exit; a SIGKILLed run's namespaces and users are swept by the
// next one. Gate each test with requireReal(this, what, <fixture>Available()).
//
// Minimal host: sessions see only busybox (root logins only).
//
//   const host = await startMinimalHost({ without: HASH_APPLETS });   // or {} / { extraPrograms: ['xxhsum'] }
//   await runCli(['send', image, `root@${host.host}:${target}`, '-p', String(host.port),
//     '-i', host.clientKeyPath, '--known-hosts', host.knownHostsPath, '--yes']);
//   await host.stop();
//
// Bastion: the target is reachable only through the bastion.
//
//   const pair = await startBastionPair();                 // { target: { minimalHost: true } } also works
//   await runCli(['send', image, `target:${file}`, '--ssh-config', pair.sshConfigPath, '--yes']);
//   await runCli([... '--ssh-config', pair.proxyCommandConfigPath ...]);            // ProxyCommand ssh -W
//   const unknown = await pair.writeSshConfig({ knownHostsPath: pair.targetOnlyKnownHostsPath });
//   // -J: `-J root@${pair.bastion.host}:${pair.bastion.port}`, target `root@${pair.target.host}:…` with
//   // `-p ${pair.target.port} --known-hosts ${pair.knownHostsPath}`; each sshd accepts only its own
//   // client key unless told otherwise: await pair.target.authorize('root', bastionPublicKey).
//   await pair.stop();
//
// sudo user: a non-root login with password-less sudo, or without any sudo rights.
//
//   const sshd = await startSshd();
//   const admin = await createUser({ sudo: true, sshd });
//   const nobody = await createUser({ sshd });
//   await runCli(['send', image, `${admin.name}@${sshd.host}:${loopDev}`, '--sudo', '-p', String(sshd.port),
//     '-i', admin.keyPath, '--known-hosts', sshd.knownHostsPath, '--yes']);
//   await admin.remove(); await nobody.remove(); await sshd.stop();

export {
  BASTION_HOST,
  TARGET_HOST,
  bastionAvailable,
  renderSshConfig,
  startBastionPair,
  type BastionPair,
  type SshConfigOptions,
} from './bastion.js';
export { HASH_APPLETS, MASKED_DIRS, minimalHostAvailable, type MinimalHostOptions, type MinimalHostParts } from './minimal-host.js';
export { createNetns, netnsAvailable, relayInto, type NetworkNamespace } from './netns.js';
export { BATCH, runSsh, sshSession, type SshResult } from './ssh-run.js';
export { startMinimalHost, startSshd, type TestSshd, type TestSshdOptions } from './sshd.js';
export { createUser, usersAvailable, type CreateUserOptions, type TestUser } from './users.js';
