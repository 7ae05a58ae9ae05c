import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveFromText, resolveSshHost } from '../../src/transport/ssh-config.js';

describe('transport/ssh-config', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ddt-sshcfg-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('resolves HostName, Port, User and IdentityFile (tilde and tokens expanded)', async () => {
    const cfg = join(dir, 'config');
    await writeFile(
      cfg,
      [
        'Host myvm',
        '  HostName 10.1.2.3',
        '  Port 2222',
        '  User admin',
        '  IdentityFile ~/.ssh/id_vm',
        '  IdentityFile %d/keys/%r@%h',
        '',
        'Host *',
        '  User fallback',
        '  Port 22',
        '  IdentityFile ~/.ssh/id_default',
        '',
      ].join('\n'),
    );
    const got = await resolveSshHost('myvm', cfg);
    assert.deepEqual(got, {
      alias: 'myvm',
      hostName: '10.1.2.3',
      port: 2222,
      user: 'admin',
      identityFiles: [join(homedir(), '.ssh/id_vm'), join(homedir(), 'keys/admin@10.1.2.3'), join(homedir(), '.ssh/id_default')],
      unsupported: [],
    });
    const other = await resolveSshHost('elsewhere', cfg);
    assert.equal(other.hostName, 'elsewhere');
    assert.equal(other.user, 'fallback');
    assert.equal(other.port, 22);
  });

  it('never runs Match exec', async () => {
    const marker = join(dir, 'exec-ran');
    const got = resolveFromText([`Match exec "touch ${marker}"`, '  HostName evil', 'Host x', '  HostName good', ''].join('\n'), 'x');
    assert.equal(got.hostName, 'good');
    assert.equal(existsSync(marker), false);
  });

  it('is case-insensitive in keywords like ssh', () => {
    const got = resolveFromText('host box\n  hostname 1.2.3.4\n  PORT 2200\n  user bob\n', 'box');
    assert.deepEqual({ h: got.hostName, p: got.port, u: got.user }, { h: '1.2.3.4', p: 2200, u: 'bob' });
  });

  it('a missing config file means no settings', async () => {
    assert.deepEqual(await resolveSshHost('h', join(dir, 'nope')), { alias: 'h', hostName: 'h', identityFiles: [], unsupported: [] });
  });

  it('a bad Port is a usage error', () => {
    assert.throws(() => resolveFromText('Host h\n  Port nope\n', 'h'), UsageError);
  });

  it('honours ProxyJump, UserKnownHostsFile, IdentitiesOnly, ConnectTimeout, ServerAliveInterval', () => {
    const got = resolveFromText(
      ['Host target', '  HostName 10.0.0.9', '  ProxyJump ops@gw:2222,inner', '  UserKnownHostsFile ~/.ssh/kh_%h /etc/kh2', '  IdentitiesOnly yes', '  ConnectTimeout 7', '  ServerAliveInterval 5', ''].join('\n'),
      'target',
    );
    assert.equal(got.proxyJump, 'ops@gw:2222,inner');
    assert.equal(got.proxyCommand, undefined);
    assert.deepEqual(got.userKnownHostsFiles, [join(homedir(), '.ssh/kh_10.0.0.9'), '/etc/kh2']);
    assert.equal(got.identitiesOnly, true);
    assert.equal(got.connectTimeoutMs, 7000);
    assert.equal(got.serverAliveIntervalMs, 5000);
    assert.deepEqual(got.unsupported, []);
  });

  it('ProxyCommand as written (tokens expanded later); of ProxyJump and ProxyCommand the first one wins; none is none', () => {
    const pc = resolveFromText('Host t\n  ProxyCommand ssh -W %h:%p "my gw"\n  ProxyJump gw\n', 't');
    assert.equal(pc.proxyCommand, 'ssh -W %h:%p "my gw"');
    assert.equal(pc.proxyJump, undefined);
    const pj = resolveFromText('Host t\n  ProxyJump gw\nHost *\n  ProxyCommand nc %h %p\n', 't');
    assert.equal(pj.proxyJump, 'gw');
    assert.equal(pj.proxyCommand, undefined);
    const none = resolveFromText('Host t\n  ProxyJump none\nHost *\n  ProxyJump gw\n', 't');
    assert.equal(none.proxyJump, undefined);
  });

  it('a bad ConnectTimeout is a usage error', () => {
    assert.throws(() => resolveFromText('Host h\n  ConnectTimeout soon\n', 'h'), UsageError);
  });

  it('names the keywords that change where or how ssh connects, not those set to what ddt does anyway', () => {
    const got = resolveFromText(
      [
        'Host t',
        '  KexAlgorithms curve25519-sha256',
        '  HostKeyAlias other',
        '  ProxyUseFdpass yes',
        '  CertificateFile ~/.ssh/cert.pub',
        '  LocalCommand echo hi',
        '  ControlMaster no',
        '  ControlPath none',
        '  StrictHostKeyChecking yes',
        '  AddressFamily any',
        '  ForwardAgent yes',
        'Host *',
        '  ControlMaster auto',
        '  BindAddress 10.0.0.1',
        '',
      ].join('\n'),
      't',
    );
    assert.deepEqual(got.unsupported, ['KexAlgorithms', 'HostKeyAlias', 'ProxyUseFdpass', 'CertificateFile', 'LocalCommand', 'BindAddress']);
  });

  it('Match exec is named only when its block would change the host settings', () => {
    const matters = resolveFromText('Match host t exec "on-vpn"\n  HostName 10.9.9.9\nHost t\n  Port 22\n', 't');
    assert.deepEqual(matters.unsupported, ['Match exec']);
    assert.equal(matters.hostName, 't');
    const elsewhere = resolveFromText('Match host other exec "on-vpn"\n  HostName 10.9.9.9\nHost t\n  Port 22\n', 't');
    assert.deepEqual(elsewhere.unsupported, []);
  });

  it('CanonicalizeHostname is named, and reading the config runs no name lookup', async () => {
    const bin = join(dir, 'bin');
    const marker = join(dir, 'nslookup-ran');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'nslookup'), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const got = resolveFromText('Host t\n  CanonicalizeHostname yes\n  CanonicalDomains example.com\n', 't');
      assert.deepEqual(got.unsupported, ['CanonicalDomains', 'CanonicalizeHostname']);
      assert.equal(got.hostName, 't');
    } finally {
      process.env.PATH = path;
    }
    assert.equal(existsSync(marker), false);
  });

  it('an ssh config that is not a regular file, or too large, is refused (exit 2)', async () => {
    assert.throws(() => resolveSshHost('h', dir), (err: Error) => err instanceof UsageError && /ssh config .* is not a regular file/.test(err.message));
    const big = join(dir, 'big-config');
    await writeFile(big, '');
    await truncate(big, 16 * 1024 * 1024 + 1);
    assert.throws(() => resolveSshHost('h', big), (err: Error) => err instanceof UsageError && /larger than/.test(err.message));
    assert.deepEqual(resolveSshHost('h', '/dev/null'), { alias: 'h', hostName: 'h', identityFiles: [], unsupported: [] });
  });
});
