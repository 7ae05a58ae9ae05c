import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { remoteTarget, rewriteLegacyArgv } from '../../src/cli/legacy.js';

describe('cli/legacy: the original script\'s command line', () => {
  it('the bare --local_device form is ddt send', () => {
    assert.deepEqual(
      rewriteLegacyArgv(['--local_device', '/dev/sdb', '--remote_device', '/dev/vdb', '--TargetHost', '10.0.0.5', '--remote_transfer_dir', '/var/tmp', '--ssh_port', '2222', '--keep_logs', '--yes']),
      ['send', '/dev/sdb', '10.0.0.5:/dev/vdb', '--remote-dir', '/var/tmp', '--port', '2222', '--keep-logs', '--yes'],
    );
  });

  it('accepts --opt=value, any order, and ddt options between', () => {
    assert.deepEqual(
      rewriteLegacyArgv(['--TargetHost=root@backup', '--json', '--remote_device=/dev/vg0/disk', '--local_device=disk.img', '--engine', 'rsync']),
      ['send', 'disk.img', 'root@backup:/dev/vg0/disk', '--json', '--engine', 'rsync'],
    );
  });

  it('puts an IPv6 TargetHost in brackets', () => {
    assert.equal(remoteTarget('2001:db8::5', '/dev/vdb'), '[2001:db8::5]:/dev/vdb');
    assert.equal(remoteTarget('root@2001:db8::5', '/dev/vdb'), 'root@[2001:db8::5]:/dev/vdb');
    assert.equal(remoteTarget('[::1]', '/dev/vdb'), '[::1]:/dev/vdb');
  });

  it('--restart REPORT is ddt resume', () => {
    assert.deepEqual(rewriteLegacyArgv(['--restart', 'run.journal', '--json']), ['resume', 'run.journal', '--json']);
    assert.deepEqual(rewriteLegacyArgv(['--restart=run.journal']), ['resume', 'run.journal']);
  });

  it('renames the old options after a command word too, and leaves ddt\'s own argv alone', () => {
    assert.deepEqual(rewriteLegacyArgv(['send', 'a', 'h:/b', '--ssh_port', '22', '--keep_logs']), ['send', 'a', 'h:/b', '--port', '22', '--keep-logs']);
    const plain = ['send', 'a', 'h:/b', '--engine', 'rsync', '--', '--keep_logs'];
    assert.deepEqual(rewriteLegacyArgv(plain), plain);
  });

  it('an incomplete or mixed old form is a usage error (exit 2)', () => {
    const bad = (argv: string[], re: RegExp) => assert.throws(() => rewriteLegacyArgv(argv), (e: unknown) => e instanceof UsageError && e.exitCode === 2 && re.test(e.message));
    bad(['--local_device', '/dev/sdb', '--TargetHost', 'h'], /--remote_device missing/);
    bad(['--local_device'], /needs a value/);
    bad(['--restart', 'j', '--TargetHost', 'h'], /recorded/);
    bad(['--restart', 'j', '--ssh_port', '22'], /recorded/);
    bad(['send', '--local_device', 'x'], /no command word/);
  });
});
