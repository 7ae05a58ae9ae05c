import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { formatJumpSpec, isRemoteSpec, parseJumpSpecs, parseRemoteSpec } from '../../src/transport/target-spec.js';

describe('transport/target-spec', () => {
  const good: Array<[string, ReturnType<typeof parseRemoteSpec>]> = [
    ['host:/dev/vdb', { hosts: ['host'], path: '/dev/vdb' }],
    ['root@host:/dev/vdb', { user: 'root', hosts: ['host'], path: '/dev/vdb' }],
    ['root@10.0.0.5:/dev/vdb', { user: 'root', hosts: ['10.0.0.5'], path: '/dev/vdb' }],
    ['h1,h2,h3:/img', { hosts: ['h1', 'h2', 'h3'], path: '/img' }],
    ['admin@h1,10.1.1.1:/img', { user: 'admin', hosts: ['h1', '10.1.1.1'], path: '/img' }],
    ['[::1]:/dev/vdb', { hosts: ['::1'], path: '/dev/vdb' }],
    ['root@[2001:db8::1]:/dev/vdb', { user: 'root', hosts: ['2001:db8::1'], path: '/dev/vdb' }],
    ['[fe80::1%eth0]:/x', { hosts: ['fe80::1%eth0'], path: '/x' }],
    ['[::1],[::2],h:/x', { hosts: ['::1', '::2', 'h'], path: '/x' }],
    ['my-vm.example.com:/dev/disk/by-id/virtio-x:0', { hosts: ['my-vm.example.com'], path: '/dev/disk/by-id/virtio-x:0' }],
    ['a@b@host:/x', { user: 'a@b', hosts: ['host'], path: '/x' }],
    ['host:/path with spaces; and $(stuff)', { hosts: ['host'], path: '/path with spaces; and $(stuff)' }],
    ['host:relative.img', { hosts: ['host'], path: 'relative.img' }],
  ];
  for (const [spec, want] of good) {
    it(`parses ${spec}`, () => assert.deepEqual(parseRemoteSpec(spec), want));
  }

  const bad = [
    '/dev/sda', // local path
    './a:b', // a slash before the colon: local, like scp
    'host:', // empty path
    ':/dev/vdb', // empty host
    'root@:/x',
    '@host:/x',
    '[::1:/x', // unbalanced
    '::1]:/x',
    '[not-ipv6]:/x',
    'h1,,h2:/x',
    'host name:/x',
    '-oProxyCommand=x:/x', // would be an ssh option
    'user name@host:/x',
    'host:/x\n',
    'host:/a\0b',
  ];
  for (const spec of bad) {
    it(`refuses ${JSON.stringify(spec)} with exit 2`, () => {
      assert.throws(() => parseRemoteSpec(spec), (err: unknown) => err instanceof UsageError && err.exitCode === 2);
    });
  }

  it('tells remote specs from local paths', () => {
    assert.equal(isRemoteSpec('host:/x'), true);
    assert.equal(isRemoteSpec('[::1]:/x'), true);
    assert.equal(isRemoteSpec('/dev/sda'), false);
    assert.equal(isRemoteSpec('disk.img'), false);
    assert.equal(isRemoteSpec('/dev/disk/by-id/usb-x:0'), false);
  });

  for (const [spec, hint] of [
    ['root@::1:/dev/x', 'root@[::1]:/dev/x'],
    ['::1:/dev/x', '[::1]:/dev/x'],
    ['2001:db8::5:/dev/vdb', '[2001:db8::5]:/dev/vdb'],
    ['admin@fe80::1%eth0:/img', 'admin@[fe80::1%eth0]:/img'],
  ]) {
    it(`an unbracketed IPv6 address (${spec}) is refused with how to write it`, () => {
      assert.throws(
        () => parseRemoteSpec(spec),
        (err: Error) => err instanceof UsageError && err.message.endsWith(`IPv6 addresses go in brackets: ${hint}`),
      );
    });
  }

  it('-J specs: user, port, chains, ssh://, bracketed IPv6', () => {
    assert.deepEqual(parseJumpSpecs('bastion'), [{ host: 'bastion' }]);
    assert.deepEqual(parseJumpSpecs('ops@gw:2222,inner'), [{ user: 'ops', host: 'gw', port: 2222 }, { host: 'inner' }]);
    assert.deepEqual(parseJumpSpecs('ssh://root@[2001:db8::1]:22'), [{ user: 'root', host: '2001:db8::1', port: 22 }]);
    assert.deepEqual(parseJumpSpecs('[::1]'), [{ host: '::1' }]);
    assert.equal(formatJumpSpec({ user: 'root', host: '::1', port: 2 }), 'root@[::1]:2');
  });

  for (const bad of ['', 'a,,b', 'gw:0', 'gw:99999', 'gw:x', '::1', 'u@', 'a b', '[::1', '[::1]x', '-oProxyCommand=x', 'user name@gw']) {
    it(`-J ${JSON.stringify(bad)} is refused (exit 2)`, () => assert.throws(() => parseJumpSpecs(bad), UsageError));
  }
});
