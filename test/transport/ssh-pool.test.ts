// SshPool against the harness's real OpenSSH server: host keys, auth, channel limits,
// the TCP connection cap and reconnects.
import { SshError } from '../harness/errors.js';
import type { DdtError } from '../../src/errors.js';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ClientChannel } from 'ssh2';
import { howEnded, runRemote } from '../../src/remote/run.js';
import { connectSsh, loadAuthMethods } from '../../src/transport/ssh-connect.js';
import { SshPool } from '../../src/transport/ssh-pool.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { establishedTo } from '../harness/tcp.js';
import { poolOptions, sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';

const run = promisify(execFile);

/** Run a command on a channel and collect stdout. */
async function output(pool: SshPool, cmd: string): Promise<string> {
  const ch = await pool.exec(cmd);
  let out = '';
  ch.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => ch.once('close', r));
  await pool.release(ch);
  return out;
}

/** Established TCP connections to the sshd port, as the kernel sees them. */
async function establishedCount(port: number): Promise<number> {
  return establishedTo(port).length;
}

async function expectSshError(p: Promise<unknown>, code: string, re: RegExp): Promise<DdtError> {
  const err = await p.then(
    () => assert.fail('expected an SshError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof SshError, `SshError expected, got ${String(err)}`);
  assert.equal(err.exitCode, 3);
  assert.equal(err.code, code);
  assert.match(err.message, re);
  assert.ok(!err.message.includes('\n'), 'one-line message');
  return err;
}

describe('transport/ssh-pool (real sshd)', function () {
  this.timeout(60_000);
  let sshd: TestSshd;

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    sshd = await startSshd();
  });
  after(async () => {
    await sshd?.stop();
  });

  it('a quick command\'s exit status is kept though it comes in the same read as the exec\'s answer', async () => {
    const pool = await SshPool.open(poolOptions(sshd, { connections: 1, channelsPerConnection: 4 }));
    // Hog the event loop in slices, as a loaded machine does, so that the exec's answer, the
    // command's output, its exit status and the close pile up and are parsed in one go.
    const hog = setInterval(() => {
      const until = Date.now() + 25;
      while (Date.now() < until);
    }, 1);
    try {
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => runRemote(pool, `echo ${i}; exit ${(i % 5) + 3}`)));
      results.forEach((r, i) => {
        assert.equal(r.code, (i % 5) + 3, `command ${i}: ${howEnded(r)}`);
        assert.equal(r.stdout, `${i}\n`);
      });
    } finally {
      clearInterval(hog);
      await pool.close();
    }
  });

  it('turns Nagle\'s algorithm off on its TCP connections (a small request is not held back for an ACK)', async () => {
    const o = poolOptions(sshd);
    const client = await connectSsh({ host: o.hosts[0]!, port: o.port, user: o.user }, o, loadAuthMethods(o.user, o), () => undefined);
    try {
      // What net.Socket#setNoDelay recorded (Node keeps no public getter); ssh2's own socket.
      const sock = (client as unknown as { _sock: Socket })._sock;
      const key = Object.getOwnPropertySymbols(sock).find((k) => k.description === 'kSetNoDelay');
      assert.ok(key, 'net.Socket keeps its no-delay setting under kSetNoDelay');
      assert.equal((sock as unknown as Record<symbol, unknown>)[key], true);
    } finally {
      client.end();
    }
  });

  it('connects with a key and a known host key, and runs commands', async () => {
    const pool = await SshPool.open(poolOptions(sshd));
    try {
      assert.equal((await output(pool, 'echo hello')).trim(), 'hello');
      assert.equal(pool.capacity(), 4);
    } finally {
      await pool.close();
    }
  });

  it('unknown host key: exit 3 naming host, fingerprint, the line to add and --accept-new-host-key', async () => {
    const kh = join(sshd.dir, 'kh-empty');
    await writeFile(kh, '');
    const err = await expectSshError(SshPool.open(poolOptions(sshd, { knownHostsFiles: [kh] })), 'SSH_HOST_KEY_UNKNOWN', /not known/);
    assert.ok(err.message.includes(sshd.hostKeyFingerprint), err.message);
    assert.ok(err.message.includes(`[${sshd.host}]:${sshd.port} ${sshd.hostPublicKey}`), err.message);
    assert.match(err.message, /--accept-new-host-key/);
    assert.equal(await readFile(kh, 'utf8'), '', 'nothing recorded without the flag');
  });

  it('changed host key: exit 3 with the new fingerprint, even with --accept-new-host-key', async () => {
    const other = join(sshd.dir, 'other_key');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const otherPub = (await readFile(`${other}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const kh = join(sshd.dir, 'kh-changed');
    await writeFile(kh, `[${sshd.host}]:${sshd.port} ${otherPub}\n`);
    const warnings: string[] = [];
    const err = await expectSshError(
      SshPool.open(poolOptions(sshd, { knownHostsFiles: [kh], acceptNewHostKey: true, onWarning: (m) => warnings.push(m) })),
      'SSH_HOST_KEY_CHANGED',
      /man-in-the-middle/,
    );
    assert.ok(err.message.includes(sshd.hostKeyFingerprint), err.message);
    assert.equal(await readFile(kh, 'utf8'), `[${sshd.host}]:${sshd.port} ${otherPub}\n`, 'known_hosts untouched');
    assert.deepEqual(warnings, []);
  });

  it('--accept-new-host-key records an unknown key (with a warning) and it is trusted next time', async function () {
    requireReal(this, 'ssh', haveCommand('ssh')); // OpenSSH must agree with what was written
    const kh = join(sshd.dir, 'kh-tofu');
    await writeFile(kh, '# mine\n');
    const warnings: string[] = [];
    const pool = await SshPool.open(poolOptions(sshd, { knownHostsFiles: [kh], acceptNewHostKey: true, connections: 2, onWarning: (m) => warnings.push(m) }));
    await pool.close();
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0], new RegExp(sshd.hostKeyFingerprint.replace(/[+/]/g, '\\$&')));
    assert.equal(await readFile(kh, 'utf8'), `# mine\n[${sshd.host}]:${sshd.port} ${sshd.hostPublicKey}\n`, 'recorded once');
    // OpenSSH agrees with what was written.
    const args = ['-p', String(sshd.port), '-i', sshd.clientKeyPath, '-o', `UserKnownHostsFile=${kh}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes'];
    await run('ssh', [...args, `root@${sshd.host}`, 'true']);
    const again = await SshPool.open(poolOptions(sshd, { knownHostsFiles: [kh] }));
    await again.close();
  });

  it('authentication failure is exit 3', async () => {
    const wrong = join(sshd.dir, 'wrong_key');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrong]);
    await expectSshError(SshPool.open(poolOptions(sshd, { identityFiles: [wrong] })), 'SSH_AUTH', /authentication as root@/);
    await expectSshError(SshPool.open(poolOptions(sshd, { identityFiles: [] })), 'SSH_NO_AUTH', /no way to authenticate/);
  });

  it('authenticates through ssh-agent (SSH_AUTH_SOCK) without identity files', async function () {
    requireReal(this, 'ssh-agent, ssh-add', haveCommand('ssh-agent') && haveCommand('ssh-add'));
    const sock = join(sshd.dir, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
      await run('ssh-add', ['-q', sshd.clientKeyPath], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
      const pool = await SshPool.open(poolOptions(sshd, { identityFiles: [], agent: sock }));
      assert.equal((await output(pool, 'echo via-agent')).trim(), 'via-agent');
      await pool.close();
    } finally {
      agent.kill();
    }
  });

  it('spreads connections over several addresses of the host (host1,host2:path)', async () => {
    const multi = await startSshd({ listen: ['127.0.0.1', '127.0.0.2'] });
    const pool = await SshPool.open(poolOptions(multi, { hosts: multi.hosts, connections: 2 }));
    try {
      const peers = establishedTo(multi.port).map((c) => c.peer);
      assert.deepEqual(peers.sort(), ['127.0.0.1', '127.0.0.2']);
      assert.equal((await output(pool, 'echo ok')).trim(), 'ok');
    } finally {
      await pool.close();
      await multi.stop();
    }
  });

  it('a refused connection is exit 3 at once', async () => {
    const t0 = Date.now();
    await expectSshError(SshPool.open({ ...poolOptions(sshd), port: 1 }), 'SSH_CONNECT', /ECONNREFUSED/);
    assert.ok(Date.now() - t0 < 5000, 'no retry loop for a wrong address');
  });

  it('never opens more TCP connections than `connections`, whatever the demand', async () => {
    const before = await establishedCount(sshd.port);
    const pool = await SshPool.open(poolOptions(sshd, { connections: 2, channelsPerConnection: 3 }));
    try {
      assert.equal(await establishedCount(sshd.port), before + 2);
      // 10 concurrent commands for 6 slots: they queue, no extra connection appears.
      let peak = 0;
      const watch = setInterval(() => {
        void establishedCount(sshd.port).then((n) => (peak = Math.max(peak, n - before)));
      }, 50);
      const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => output(pool, `sleep 0.3; echo ${i}`)));
      clearInterval(watch);
      assert.deepEqual(outs.map((o) => Number(o.trim())), [...Array(10).keys()]);
      assert.ok(peak <= 2, `peak ${peak} connections`);
      assert.equal(await establishedCount(sshd.port), before + 2);
    } finally {
      await pool.close();
    }
  });

  it('MaxSessions 2 with 4 channels requested: works with capacity 2 and exactly one warning', async () => {
    const small = await startSshd({ maxSessions: 2 });
    const warnings: string[] = [];
    const pool = await SshPool.open(poolOptions(small, { connections: 1, channelsPerConnection: 4, onWarning: (m) => warnings.push(m) }));
    try {
      const opened = await Promise.allSettled(Array.from({ length: 4 }, () => pool.exec('cat', { wait: false })));
      const ok = opened.filter((r): r is PromiseFulfilledResult<ClientChannel> => r.status === 'fulfilled').map((r) => r.value);
      assert.equal(ok.length, 2);
      for (const r of opened) if (r.status === 'rejected') assert.equal((r.reason as DdtError).code, 'SSH_NO_CHANNEL');
      assert.equal(pool.capacity(), 2);
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0], /MaxSessions.*2 channel\(s\) per connection instead of 4/);
      // A waiting exec gets the slot a released channel frees.
      const waiting = output(pool, 'echo late');
      await pool.release(ok[0]);
      assert.equal((await waiting).trim(), 'late');
      await pool.release(ok[1]);
      const again = await Promise.all(Array.from({ length: 5 }, (_, i) => output(pool, `echo ${i}`)));
      assert.equal(again.length, 5);
      assert.equal(warnings.length, 1);
    } finally {
      await pool.close();
      await small.stop();
    }
  });

  it('MaxSessions 2: an open racing the close of a finished command is tried again, not taken as the limit', async () => {
    const small = await startSshd({ maxSessions: 2 });
    const warnings: string[] = [];
    const pool = await SshPool.open(poolOptions(small, { connections: 1, channelsPerConnection: 2, onWarning: (m) => warnings.push(m) }));
    try {
      // Four callers on two slots: each open follows the close of a command that has just ended
      // (sshd refuses some of them for a moment; believing it shrank the pool within ~6 runs).
      const outs = await Promise.all(
        [0, 1, 2, 3].map(async (k) => {
          const got: string[] = [];
          for (let i = 0; i < 25; i++) got.push((await output(pool, `echo ${k}.${i}`)).trim());
          return got;
        }),
      );
      assert.deepEqual(outs, [0, 1, 2, 3].map((k) => Array.from({ length: 25 }, (_, i) => `${k}.${i}`)));
      assert.equal(pool.capacity(), 2);
      assert.deepEqual(warnings, []);
    } finally {
      await pool.close();
      await small.stop();
    }
  });

  it('a dropped connection fails its channels and reconnects on the next demand', async () => {
    const warnings: string[] = [];
    const pool = await SshPool.open(poolOptions(sshd, { connections: 1, onWarning: (m) => warnings.push(m) }));
    try {
      const ch = await pool.exec('sleep 30');
      ch.resume(); // ssh2 reports 'close' only once the output was read
      const closed = new Promise((r) => ch.once('close', r));
      const pids = sshd.connectionPids();
      assert.ok(pids.length >= 1);
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      await closed;
      assert.equal((await output(pool, 'echo back')).trim(), 'back');
      assert.ok(warnings.some((w) => /lost/.test(w)), warnings.join('\n'));
      assert.equal(pool.liveConnections(), 1);
    } finally {
      await pool.close();
    }
  });

  it('gives up reconnecting after reconnectTimeoutMs with exit 3', async () => {
    const gone = await startSshd();
    const warnings: string[] = [];
    const pool = await SshPool.open(poolOptions(gone, { reconnectTimeoutMs: 1500, onWarning: (m) => warnings.push(m) }));
    try {
      const t0 = Date.now(); // the timeout counts from the loss, not from the next demand
      await gone.stop(); // the server and its connections vanish
      const stopped = Date.now();
      for (let i = 0; i < 100 && pool.liveConnections() > 0; i++) await new Promise((r) => setTimeout(r, 20));
      const noticed = Date.now();
      await expectSshError(pool.exec('true'), 'SSH_CONNECT', /gave up after/);
      const took = Date.now() - t0;
      // Bounded from when the harness had stopped the server (its /proc scans can be slow on a
      // busy machine, and the loss happens at its start), with each phase in the message.
      const phases = `stop ${stopped - t0} ms, loss noticed ${noticed - stopped} ms later, gave up ${Date.now() - noticed} ms after that`;
      assert.ok(took >= 1000 && Date.now() - stopped < 6000, `gave up after ${took} ms (${phases})`);
      assert.ok(warnings.some((m) => /lost/.test(m)));
    } finally {
      await pool.close();
    }
  });
});
