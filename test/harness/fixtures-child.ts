// A process that starts remote-host fixtures and then waits to be ended:
// fixtures-exit.test.ts runs it to prove that the cleanup registry alone (no
// stop(), no remove()) leaves nothing behind, and that what a SIGKILL leaves
// is swept by the next run. Prints one JSON line when ready.
//
//   fixtures-child.ts          every fixture
//   fixtures-child.ts sweep    only what a later run can sweep (namespaced sshds, a user)

import { dirname } from 'node:path';
import { startBastionPair } from './bastion.js';
import { startMinimalHost, startSshd } from './sshd.js';
import { createUser } from './users.js';

const sweepOnly = process.argv[2] === 'sweep';
const pair = await startBastionPair({ target: { minimalHost: true } });
const minimal = sweepOnly ? undefined : await startMinimalHost();
const plain = sweepOnly ? undefined : await startSshd();
const user = await createUser({ sudo: true, sshd: plain });
const ready = {
  netns: pair.netns,
  pids: [pair.bastion.pid, pair.target.pid, ...(minimal && plain ? [minimal.pid, plain.pid] : [])],
  binDir: pair.target.minimalHost!.binDir,
  dirs: [pair.dir, pair.bastion.dir, pair.target.dir, dirname(pair.target.minimalHost!.binDir), user.home, dirname(user.keyPath), ...(minimal && plain ? [minimal.dir, plain.dir, dirname(minimal.minimalHost!.binDir)] : [])],
  user: user.name,
  sudoers: user.sudoersPath,
  // ssh arguments (before the command) of a session on each fixture
  sessions: [
    ['-F', pair.sshConfigPath, 'target'],
    ...(minimal && plain
      ? [
          [...minimal.sshArgs(), `root@${minimal.host}`],
          ['-p', String(plain.port), '-i', user.keyPath, '-o', `UserKnownHostsFile=${plain.knownHostsPath}`, '-o', 'IdentitiesOnly=yes', `${user.name}@${plain.host}`],
        ]
      : []),
  ],
};
process.stdout.write(`${JSON.stringify(ready)}\n`);
// Until the test ends this process: by a signal, or by closing stdin (a plain exit).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
