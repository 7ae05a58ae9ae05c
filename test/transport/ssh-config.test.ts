import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
});
