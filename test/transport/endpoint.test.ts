import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { knownHostsFilesOf, resolveEndpoint, resolveRoute } from '../../src/transport/endpoint.js';
import { parseRemoteSpec } from '../../src/transport/target-spec.js';
import { UsageError } from '../harness/errors.js';

describe('transport/endpoint: the way to a host through the ssh config', () => {
  let dir: string;
  let cfg: string;
  let key: string;
  let known: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ddt-endpoint-'));
    cfg = join(dir, 'config');
    key = join(dir, 'key');
    known = join(dir, 'known');
    await writeFile(key, 'not parsed here');
    await writeFile(known, '');
    await writeFile(
      cfg,
      [
        'Host target',
        '  HostName 10.0.0.9',
        '  Port 2200',
        '  User admin',
        `  IdentityFile ${key}`,
        '  ProxyJump inner',
        '  ConnectTimeout 9',
        'Host inner',
        '  HostName 10.1.0.1',
        '  User hop',
        '  ProxyJump outer',
        `  UserKnownHostsFile ${join(dir, 'kh-inner')}`,
        'Host outer',
        '  HostName gw.example.com',
        '  Port 2222',
        '  KexAlgorithms curve25519-sha256',
        'Host pc',
        '  HostName 10.2.0.2',
        '  ProxyCommand ssh -W %h:%p -l %r -oTag=%n gw',
        'Host loop1',
        '  ProxyJump loop2',
        'Host loop2',
        '  ProxyJump loop1',
        '',
      ].join('\n'),
    );
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('ProxyJump leads back through each hop’s own ProxyJump; each hop resolved through the config', async () => {
    const e = await resolveEndpoint(parseRemoteSpec('target:/dev/vdb'), { sshConfig: cfg });
    assert.equal(e.jump, 'inner');
    assert.deepEqual(
      e.hops!.map((h) => [h.name, h.host, h.port, h.user]),
      [
        ['outer', 'gw.example.com', 2222, process.env.USER ?? 'root'],
        ['inner', '10.1.0.1', 22, 'hop'],
      ],
    );
    // What a hop's entry does not say comes from the target: its key, its ConnectTimeout.
    assert.deepEqual(e.hops![0]!.identityFiles, [key]);
    assert.equal(e.hops![0]!.connectTimeoutMs, 9000);
    assert.deepEqual(knownHostsFilesOf(e.hops![1]!)[0], join(dir, 'kh-inner'));
    assert.deepEqual(e.unsupported, ['KexAlgorithms (outer)']);
    assert.equal(e.proxyCommand, undefined);
  });

  it('-J replaces the config’s ProxyJump; --known-hosts holds for every host of the way', async () => {
    const e = await resolveEndpoint(parseRemoteSpec('target:/dev/vdb'), { sshConfig: cfg, jump: 'ops@10.3.0.3:2022', knownHosts: known });
    assert.equal(e.jump, 'ops@10.3.0.3:2022');
    assert.deepEqual(e.hops!.map((h) => [h.host, h.port, h.user, h.knownHostsFile]), [['10.3.0.3', 2022, 'ops', known]]);
    assert.deepEqual(knownHostsFilesOf(e), [known]);
  });

  it('ProxyCommand: tokens expanded for the target; not recorded as a jump', async () => {
    const e = await resolveEndpoint(parseRemoteSpec('root@pc:/x'), { sshConfig: cfg });
    assert.equal(e.jump, undefined);
    assert.deepEqual(e.hops, []);
    assert.equal(e.proxyCommand, 'ssh -W 10.2.0.2:22 -l root -oTag=pc gw');
  });

  it('a jump host with a ProxyCommand of its own starts the way with it', () => {
    const e = resolveRoute({ hosts: ['10.9.9.9'], port: 22, user: 'root', identityFiles: [], jump: 'pc,inner' }, cfg);
    assert.deepEqual(e.hops!.map((h) => h.name), ['pc', 'inner']);
    assert.equal(e.proxyCommand, `ssh -W 10.2.0.2:22 -l ${process.env.USER ?? 'root'} -oTag=pc gw`);
  });

  it('a ProxyJump loop is refused (exit 2), not followed forever', () => {
    assert.throws(() => resolveRoute({ hosts: ['x'], port: 22, user: 'root', identityFiles: [], jump: 'loop1' }, cfg), (err: Error) => err instanceof UsageError && /loop/.test(err.message));
  });

  it('an identity file that is a device or a directory is refused before connecting (exit 2)', async () => {
    for (const bad of ['/dev/zero', dir]) {
      await assert.rejects(resolveEndpoint(parseRemoteSpec('h:/x'), { sshConfig: '/dev/null', identity: [bad] }), (err: Error) => err instanceof UsageError && err.message.includes(`identity file ${bad} is not a regular file`));
    }
  });
});
