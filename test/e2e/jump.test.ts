// Jump hosts: a target that only a bastion reaches (the bastion fixture: two private sshds in a
// network namespace), through ProxyJump and ProxyCommand from an ssh config and through -J, on
// every data path and command, built CLI. The target file lives on this machine's filesystem
// (only the network is namespaced), so bytes are compared here.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { haveCommand, requireReal } from '../harness/real.js';
import { bastionAvailable, startBastionPair, type BastionPair } from '../harness/remote-hosts.js';
import { jsonOf, runCli, startCli, type CliResult } from './cli.js';
import { countConnections, waitForVerified } from './remote-helpers.js';

const MiB = 1024 * 1024;
const SIZE = 24 * MiB;
// No agent of this machine: only the fixture's keys.
const ENV = { SSH_AUTH_SOCK: '' };

function pathOf(journal: string): string {
  return (JSON.parse(readFileSync(journal, 'utf8').split('\n')[0]!) as { path: { name: string } }).path.name;
}

describe('e2e: jump hosts (ProxyJump, ProxyCommand, -J)', function () {
  let pair: BastionPair;
  let dir: string;
  let src: string;
  let srcSum: string;
  let n = 0;
  const cli = (args: string[]): Promise<CliResult> => runCli([...args, '--progress', 'none'], { env: ENV });
  /** A fresh zeroed target file of the source's size. */
  const target = async (): Promise<string> => {
    const t = join(dir, `target-${++n}.img`);
    await writeFile(t, '');
    await truncate(t, SIZE);
    return t;
  };

  before(async function () {
    requireReal(this, 'root, sshd, ssh, iproute2 and busybox (the bastion fixture)', bastionAvailable());
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-e2e-jump-');
    pair = await startBastionPair();
    src = join(dir, 'mixed.img');
    await fileOfSize(src, SIZE, 'mixed', 1701);
    srcSum = await sha256File(src);
  });
  after(async () => pair?.stop());

  for (const [name, extra] of [
    ['openssh', ['--via', 'openssh', '--connections', '3']],
    ['stream', ['--via', 'stream']],
    ['sftp', ['--via', 'sftp']],
    ['rsync', ['--engine', 'rsync']],
  ] as const) {
    it(`ProxyJump from --ssh-config: send --${name === 'rsync' ? 'engine rsync' : `via ${name}`} is byte-identical, within --connections from here`, async function () {
      requireReal(this, 'rsync', name !== 'rsync' || haveCommand('rsync'));
      const t = await target();
      const journal = join(dir, `send-${name}.journal`);
      const args: readonly string[] = extra;
      const connections = Number(args.includes('--connections') ? args[args.indexOf('--connections') + 1] : 2);
      const run = startCli(['send', src, `target:${t}`, '--ssh-config', pair.sshConfigPath, '-b', '2M', '--yes', '--json', '--progress', 'none', '--journal', journal, ...extra], { env: ENV });
      // Every connection from here goes to the bastion: its log counts them all.
      const { total, most } = await countConnections(pair.bastion, run.done);
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(jsonOf(r).verified, SIZE / (2 * MiB));
      assert.equal(pathOf(journal), name);
      assert.equal(await sha256File(t), srcSum);
      console.log(`      --connections ${connections}: the bastion accepted ${total}, at most ${most} at once`);
      assert.ok(most >= 1 && most <= connections, `${most} connections to the bastion at once, --connections ${connections}`);
      assert.ok(total >= 1 && total <= connections, `the bastion accepted ${total} connections, --connections ${connections}`);
      const header = JSON.parse(readFileSync(journal, 'utf8').split('\n')[0]!) as { target: { remote: { jump?: string; sshConfig?: string } } };
      assert.equal(header.target.remote.jump, 'bastion');
      assert.equal(header.target.remote.sshConfig, pair.sshConfigPath);
    });
  }

  it('ProxyCommand from the ssh config: send (default path), pull and verify, byte-identical', async () => {
    const t = await target();
    const sent = await cli(['send', src, `target:${t}`, '--ssh-config', pair.proxyCommandConfigPath, '-b', '2M', '--yes', '--json', '--journal', join(dir, 'pc-send.journal')]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(await sha256File(t), srcSum);
    const header = JSON.parse(readFileSync(join(dir, 'pc-send.journal'), 'utf8').split('\n')[0]!) as { target: { remote: { proxyCommand?: string } } };
    assert.match(header.target.remote.proxyCommand ?? '', new RegExp(`-W 127\\.0\\.0\\.2:${pair.target.port} bastion$`));

    const back = join(dir, 'pc-pulled.img');
    const pulled = await cli(['pull', `target:${t}`, back, '--ssh-config', pair.proxyCommandConfigPath, '-b', '2M', '--yes', '--json', '--journal', join(dir, 'pc-pull.journal')]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal(await sha256File(back), srcSum);

    const same = await runCli(['verify', src, `target:${t}`, '--ssh-config', pair.proxyCommandConfigPath, '-b', '2M', '--json'], { env: ENV });
    assert.equal(same.code, 0, same.stderr);
    assert.equal(jsonOf(same).different, 0);
  });

  it('ProxyJump: pull is byte-identical; verify finds the one changed range', async () => {
    const t = await target();
    writeFileSync(t, readFileSync(src));
    const back = join(dir, 'pulled.img');
    const pulled = await cli(['pull', `target:${t}`, back, '--ssh-config', pair.sshConfigPath, '-b', '2M', '--yes', '--json', '--journal', join(dir, 'pull.journal')]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal(await sha256File(back), srcSum);
    const buf = readFileSync(t);
    buf[5 * MiB + 7] ^= 0xff;
    writeFileSync(t, buf);
    const v = await runCli(['verify', src, `target:${t}`, '--ssh-config', pair.sshConfigPath, '-b', '2M', '--json'], { env: ENV });
    assert.equal(v.code, 4, v.stderr);
    assert.deepEqual(jsonOf(v).differences, [{ offset: 4 * MiB, length: 2 * MiB }]);
  });

  it('resume after SIGKILL reuses the recorded jump (no --ssh-config given again): byte-identical', async () => {
    const t = await target();
    const journal = join(dir, 'killed.journal');
    const run = startCli(['send', src, `target:${t}`, '--ssh-config', pair.sshConfigPath, '-b', '1M', '--bwlimit', '6M', '--yes', '--progress', 'none', '--journal', journal], { env: ENV });
    await waitForVerified(journal, 3, undefined, run);
    run.child.kill('SIGKILL');
    await run.done;
    const r = await cli(['resume', journal, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonOf(r).verified, SIZE / MiB);
    assert.equal(await sha256File(t), srcSum);
  });

  it('-J on the command line, no ssh config: send --via stream and the default path, byte-identical', async () => {
    const jump = `root@${pair.bastion.host}:${pair.bastion.port}`;
    // Each sshd takes only its own client key: give both (the bastion tries each, like the target).
    const ssh = ['-J', jump, '-p', String(pair.target.port), '--known-hosts', pair.knownHostsPath, '-i', pair.bastion.clientKeyPath, '-i', pair.target.clientKeyPath, '--ssh-config', '/dev/null'];
    for (const via of [['--via', 'stream'], []]) {
      const t = await target();
      const journal = join(dir, `dash-j-${via.length}.journal`);
      const r = await cli(['send', src, `root@${pair.target.host}:${t}`, ...ssh, '-b', '2M', '--yes', '--json', '--journal', journal, ...via]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256File(t), srcSum);
      const header = JSON.parse(readFileSync(journal, 'utf8').split('\n')[0]!) as { target: { remote: { jump?: string } } };
      assert.equal(header.target.remote.jump, jump);
    }
  });

  it('a chain of two jump hosts (-J bastion,bastion, each resolved through the config): byte-identical on both kinds of connection', async () => {
    for (const via of ['openssh', 'stream']) {
      const t = await target();
      const run = cli(['send', src, `target:${t}`, '--ssh-config', pair.sshConfigPath, '-J', 'bastion,bastion', '--via', via, '-b', '2M', '--yes', '--json', '--journal', join(dir, `chain-${via}.journal`)]);
      const { total } = await countConnections(pair.bastion, run);
      const r = await run;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256File(t), srcSum);
      // Each ddt connection: one from here to the bastion, one from the bastion to itself.
      assert.ok(total >= 2 && total <= 4, `the bastion accepted ${total} connections for 2 ddt connections`);
    }
  });

  it('an unknown bastion host key: exit 3 naming the bastion, its fingerprint and the line to add; nothing forwarded', async () => {
    const config = await pair.writeSshConfig({ knownHostsPath: pair.targetOnlyKnownHostsPath, name: 'cfg-unknown-bastion' });
    const t = await target();
    const before = readFileSync(pair.bastion.logPath, 'utf8').split('direct-tcpip').length;
    for (const via of ['stream', 'openssh']) {
      const r = await cli(['send', src, `target:${t}`, '--ssh-config', config, '--yes', '--via', via, '--journal', join(dir, `unknown-${via}.journal`)]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, new RegExp(`host key of jump host bastion \\(\\[127\\.0\\.0\\.1\\]:${pair.bastion.port}\\) is not known: ssh-ed25519 SHA256:`));
      assert.ok(r.stderr.includes(`[127.0.0.1]:${pair.bastion.port} ${pair.bastion.hostPublicKey.split(' ').slice(0, 2).join(' ')}`), r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    assert.equal(readFileSync(pair.bastion.logPath, 'utf8').split('direct-tcpip').length, before, 'nothing was forwarded to the target');
    assert.equal(await sha256File(t), await sha256File(await target()), 'the target is untouched');
  });

  it('--accept-new-host-key records an unknown bastion key (never silently) and goes on', async () => {
    const known = join(dir, 'known_hosts-tofu');
    writeFileSync(known, readFileSync(pair.targetOnlyKnownHostsPath));
    const config = await pair.writeSshConfig({ knownHostsPath: known, name: 'cfg-tofu' });
    const t = await target();
    const r = await cli(['send', src, `target:${t}`, '--ssh-config', config, '--accept-new-host-key', '-b', '2M', '--yes', '--journal', join(dir, 'tofu.journal')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /permanently added host key of jump host bastion/);
    assert.ok(readFileSync(known, 'utf8').includes(`[127.0.0.1]:${pair.bastion.port} ssh-ed25519 `));
    assert.equal(await sha256File(t), srcSum);
  });

  it('ssh config keywords ddt does not carry out are named in one warning', async () => {
    const text = readFileSync(pair.sshConfigPath, 'utf8').replace('Host target\n', 'Host target\n  KexAlgorithms curve25519-sha256\n  HostKeyAlias elsewhere\n  ControlMaster no\n');
    const config = join(dir, 'cfg-unsupported');
    await writeFile(config, `${text}Host bastion\n  BindAddress 127.0.0.1\n`);
    const r = await cli(['send', src, `target:${await target()}`, '--ssh-config', config, '--yes', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('ddt does not carry out'));
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(warnings[0]!, /KexAlgorithms \(target\), HostKeyAlias \(target\), BindAddress \(bastion\)/);
    assert.doesNotMatch(warnings[0]!, /ControlMaster/);
  });
});

describe('e2e: remote locations as typed', () => {
  it('an unbracketed IPv6 address: exit 2 with how to write it, before anything connects', async () => {
    const r = await runCli(['send', '/dev/null', 'root@::1:/dev/x', '--yes', '--ssh-config', '/dev/null']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, 'ddt: error: cannot parse remote location "root@::1:/dev/x": the host looks like an IPv6 address; IPv6 addresses go in brackets: root@[::1]:/dev/x\n');
  });

  it('a bad -J: exit 2 naming it', async () => {
    const r = await runCli(['send', '/dev/null', 'root@h:/dev/x', '-J', 'gw:99999', '--yes', '--ssh-config', '/dev/null']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^ddt: error: cannot parse jump host "gw:99999": port "99999" is not 1\.\.65535/);
  });
});
