// The remote-host fixtures leave nothing behind even when their owner never
// calls stop() or remove(): a process (fixtures-child.ts) starts all of them,
// sessions are opened on each, and the process is ended by SIGTERM or by a
// plain exit. Its cleanup registry must then have removed every namespace,
// user, sudoers file, process, mount and temp dir. After a SIGKILL, which no
// cleanup survives, the next run sweeps the namespace and the user.

import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { bastionAvailable } from './bastion.js';
import { minimalHostAvailable } from './minimal-host.js';
import { sweepStaleNetns } from './netns.js';
import { NEEDS, requireReal } from './real.js';
import { BATCH, processGone, sshSession } from './ssh-run.js';
import { until } from './until.js';
import { sweepStaleUsers, usersAvailable } from './users.js';

const CHILD = fileURLToPath(new URL('./fixtures-child.ts', import.meta.url));

interface Ready {
  netns: string;
  binDir: string;
  pids: number[];
  dirs: string[];
  user: string;
  sudoers: string;
  sessions: string[][];
}

function readyLine(child: ChildProcess): Promise<Ready> {
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (data: Buffer) => {
      out += data.toString();
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]) as Ready);
    });
    child.once('exit', (code) => reject(new Error(`fixture process exited early (${code})`)));
  });
}

const mountedAnywhere = (text: string) =>
  readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .some((name) => {
      try {
        return readFileSync(`/proc/${name}/mountinfo`, 'utf8').includes(text);
      } catch {
        return false;
      }
    });

describe('remote-host fixtures at exit', () => {
  let child: ChildProcess | undefined;
  const clients: ChildProcess[] = [];
  beforeEach(function () {
    requireReal(this, `${NEEDS.bastion}, ${NEEDS.minimalHost}, ${NEEDS.users}`, bastionAvailable() && minimalHostAvailable() && usersAvailable());
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.kill();
    // A failed assertion must not turn into leftovers: end the fixture process the way that cleans up.
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 15_000))]);
    }
  });

  // Start the fixture process, open a session on each fixture, and end the process by `end`.
  async function startAndEnd(mode: string[], end: 'SIGTERM' | 'exit' | 'SIGKILL'): Promise<{ ready: Ready; remotePids: number[]; binDir: string }> {
    child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...mode], { stdio: ['pipe', 'pipe', 'inherit'] });
    const ready = await readyLine(child);
    const remotePids: number[] = [];
    for (const args of ready.sessions) {
      const session = await sshSession([...BATCH, ...args]);
      clients.push(session.child);
      remotePids.push(session.remotePid);
    }
    // mountinfo names a bind mount's source relative to its file system: match the tail.
    const binDir = ready.binDir.split('/').slice(-2).join('/');
    assert.ok(mountedAnywhere(binDir), 'a minimal-host session holds its mounts');
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    if (end === 'exit') child.stdin!.end();
    else child.kill(end);
    await exited;
    return { ready, remotePids, binDir };
  }

  function assertNamespaceAndUserGone(ready: Ready): void {
    assert.equal(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').some((line) => line.split(' ')[0] === ready.netns), false);
    assert.equal(readFileSync('/etc/passwd', 'utf8').includes(`\n${ready.user}:`), false, 'user removed');
    assert.equal(readFileSync('/etc/group', 'utf8').includes(`\n${ready.user}:`), false, 'group removed');
    assert.equal(existsSync(ready.sudoers), false);
  }

  for (const end of ['SIGTERM', 'exit'] as const) {
    it(`${end}: the cleanup registry alone removes every fixture and session`, async () => {
      const { ready, remotePids, binDir } = await startAndEnd([], end);
      assertNamespaceAndUserGone(ready);
      for (const dir of ready.dirs) assert.equal(existsSync(dir), false, dir);
      await until('every server and session process to end', () => [...ready.pids, ...remotePids].every(processGone), 5000);
      await until('the minimal-host mounts to go', () => !mountedAnywhere(binDir), 5000);
    });
  }

  it('SIGKILL: the next run sweeps the namespace, what ran in it, and the user', async () => {
    const { ready, remotePids, binDir } = await startAndEnd(['sweep'], 'SIGKILL');
    try {
      assert.ok(readFileSync('/etc/passwd', 'utf8').includes(`\n${ready.user}:`), 'a SIGKILL leaves the user');
      sweepStaleNetns();
      sweepStaleUsers();
      assertNamespaceAndUserGone(ready);
      await until('every server and session process to end', () => [...ready.pids, ...remotePids].every(processGone), 5000);
      await until('the minimal-host mounts to go', () => !mountedAnywhere(binDir), 5000);
    } finally {
      // Temp dirs are not swept: they hold nothing that runs or grants rights.
      for (const dir of ready.dirs) await rm(dir, { recursive: true, force: true });
    }
  });
});
