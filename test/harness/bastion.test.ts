// The bastion fixture, proved with the real ssh client: the target answers
// only through the bastion (ProxyJump and ProxyCommand), host keys are
// checked for both hops, and stop() leaves no namespace or process.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { netnsPids } from './netns.js';
import { NEEDS, requireReal } from './real.js';
// Through the index e2e tests import, so a broken re-export shows here.
import { BATCH, bastionAvailable, runSsh, startBastionPair, TARGET_HOST, type BastionPair } from './remote-hosts.js';
import { processGone } from './ssh-run.js';
import { until } from './until.js';


// Requests the bastion logged to open a forwarded connection to the target.
function forwardsToTarget(pair: BastionPair): number {
  const wanted = new RegExp(`server_request_direct_tcpip: originator .*, target ${TARGET_HOST.replace(/\./g, '\\.')} port ${pair.target.port}$`);
  // sshd -E ends its lines with CR LF.
  return readFileSync(pair.bastion.logPath, 'utf8').split(/\r?\n/).filter((line) => wanted.test(line)).length;
}

const netnsList = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

describe('bastion fixture', () => {
  let pair: BastionPair;
  before(async function () {
    requireReal(this, NEEDS.bastion, bastionAvailable());
    pair = await startBastionPair();
  });
  after(async () => pair?.stop());

  it('the target cannot be reached directly: refused at once', async () => {
    const direct = await runSsh([...pair.target.sshArgs(), ...BATCH, '-o', 'ConnectTimeout=5', `root@${pair.target.host}`, 'true']);
    assert.equal(direct.code, 255);
    assert.match(direct.stderr, /Connection refused/);
    assert.ok(direct.ms < 3000, `took ${direct.ms} ms`);
  });

  it('the bastion can, with the shared ssh config and known_hosts', async () => {
    const r = await runSsh(['-F', pair.sshConfigPath, ...BATCH, 'bastion', 'echo $SSH_CONNECTION']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(` 127\\.0\\.0\\.1 ${pair.bastion.port}\\n$`));
  });

  for (const via of ['ProxyJump', 'ProxyCommand'] as const) {
    it(`${via}: ssh -F cfg target reaches the target through the bastion`, async () => {
      const config = via === 'ProxyJump' ? pair.sshConfigPath : pair.proxyCommandConfigPath;
      assert.match(await readFile(config, 'utf8'), via === 'ProxyJump' ? /^ {2}ProxyJump bastion$/m : /^ {2}ProxyCommand \S*ssh -F \S+ -W %h:%p bastion$/m);
      const before = forwardsToTarget(pair);
      const r = await runSsh(['-F', config, ...BATCH, 'target', 'hostname; echo $SSH_CONNECTION; true']);
      assert.equal(r.code, 0, r.stderr);
      const [, connection] = r.stdout.split('\n');
      // The target saw the connection arrive at its own address and port, from inside the namespace.
      assert.match(connection, new RegExp(`^127\\.0\\.0\\.1 \\d+ ${TARGET_HOST.replace(/\./g, '\\.')} ${pair.target.port}$`));
      await until('the bastion to log the forwarded connection', () => forwardsToTarget(pair) === before + 1, 5000);
    });
  }

  it('known_hosts without the bastion key: host key verification fails', async () => {
    assert.equal((await readFile(pair.targetOnlyKnownHostsPath, 'utf8')).trim().split('\n').length, 1);
    const config = await pair.writeSshConfig({ knownHostsPath: pair.targetOnlyKnownHostsPath, name: 'cfg-unknown-bastion' });
    const before = forwardsToTarget(pair);
    const r = await runSsh(['-F', config, ...BATCH, 'target', 'true']);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Host key verification failed/);
    assert.equal(forwardsToTarget(pair), before, 'nothing was forwarded');
  });

  it('the target may be a minimal host too; stop() leaves no namespace, process or dir', async () => {
    const other = await startBastionPair({ target: { minimalHost: true } });
    const pids = [other.bastion.pid, other.target.pid];
    const ns = other.netns;
    try {
      assert.ok(netnsList().includes(ns));
      const r = await runSsh(['-F', other.sshConfigPath, ...BATCH, 'target', 'dd --help 2>&1 | head -n 1']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /BusyBox/);
      pids.push(...netnsPids(ns));
    } finally {
      await other.stop();
    }
    assert.equal(netnsList().split('\n').some((line) => line.split(' ')[0] === ns), false, netnsList());
    assert.equal(existsSync(`/run/netns/${ns}`), false);
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(`netns/${ns} `), false);
    await until('every process of the pair to end', () => pids.every(processGone), 5000);
    for (const path of [other.dir, other.bastion.dir, other.target.dir]) assert.equal(existsSync(path), false, path);
    const again = await runSsh(['-p', String(other.bastion.port), ...BATCH, '-o', 'ConnectTimeout=5', `root@${other.bastion.host}`, 'true']);
    assert.match(again.stderr, /Connection refused/);
  });
});
