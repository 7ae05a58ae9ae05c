// The data path registry: one predicate for new runs and resumes, every reason listed.
import assert from 'node:assert/strict';
import { choosePath, optionFor, PATHS } from '../../src/paths/registry.js';
import type { PathQuery } from '../../src/paths/types.js';
import type { RemoteProbe } from '../../src/remote/probe.js';
import { UsageError } from '../harness/errors.js';

const MiB = 1024 * 1024;
const base: PathQuery = { command: 'send', connections: 2, channels: 4, compress: 'auto', zeros: 'sparse', ssh: '/usr/bin/ssh', rsync: '/usr/bin/rsync', blockLength: 64 * MiB };
/** A probe whose staging dir has `free` bytes available. */
function probe(free: number, dir = '/root'): RemoteProbe {
  return {
    exists: true, type: 'block', size: 8 * 2 ** 30, sector: 512, mounted: false, swap: false, holders: [], writable: true,
    free, dir, dirWritable: true, dirSize: 100 * 2 ** 30, xxhsum: true, sha256sum: true, openssl: true, seekBytes: true,
    nocache: true, direct: true, cores: 2, perl: true, pid: 1, hashTools: ['xxhsum', 'sha256sum'], missing: [], gzip: true, zeroSparse: 'zeroout', zeroDiscard: 'punch',
    pathInfo: { kind: 'file', size: 1 << 30, readable: true, identity: { kind: 'file', size: 1 << 30 } },
  };
}

describe('paths/registry', () => {
  it('a new send takes openssh where it can, else sftp, else stream', () => {
    assert.equal(choosePath(base).path.name, 'openssh');
    assert.equal(choosePath({ ...base, connections: 1 }).path.name, 'sftp');
    assert.equal(choosePath({ ...base, ssh: undefined }).path.name, 'sftp');
    const noRoom = choosePath({ ...base, connections: 1, probe: probe(10 * MiB) });
    assert.equal(noRoom.path.name, 'stream');
    assert.deepEqual(noRoom.skipped.map((s) => s.name), ['openssh', 'sftp']);
    assert.match(noRoom.warnings.join('\n'), /sending with --via stream, staging is not possible: not enough space to stage/);
  });

  it('a re-sync (deltas) takes openssh, else stream before sftp, whose channels are not all workers', () => {
    const delta = { ...base, delta: true };
    assert.equal(choosePath(delta).path.name, 'openssh');
    const one = choosePath({ ...delta, connections: 1, probe: probe(100 * 2 ** 30) });
    assert.equal(one.path.name, 'stream');
    assert.deepEqual(one.warnings, [], 'staging was possible: nothing to warn about');
    assert.equal(choosePath({ ...delta, ssh: undefined }).path.name, 'stream');
    assert.equal(choosePath({ ...delta, connections: 1 }, { asked: 'sftp' }).path.name, 'sftp', 'asked for: taken');
    assert.equal(choosePath({ ...delta, connections: 1 }, { recorded: 'sftp' }).path.name, 'sftp', 'a resume keeps its path');
  });

  it('passing over openssh is not news; gzip asks for stream without a warning', () => {
    assert.deepEqual(choosePath({ ...base, connections: 1, probe: probe(100 * 2 ** 30) }).warnings, []);
    const gz = choosePath({ ...base, connections: 1, compress: 'gzip', probe: probe(100 * 2 ** 30) });
    assert.equal(gz.path.name, 'stream');
    assert.deepEqual(gz.warnings, []);
  });

  it('a path asked for that cannot work is exit 2 listing every reason, never a fallback', () => {
    assert.throws(() => choosePath({ ...base, connections: 1, ssh: undefined }, { asked: 'openssh' }), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /--via openssh cannot carry this run: .*--connections 2 or more.*; .*ssh\) not found/);
      return true;
    });
    assert.throws(() => choosePath({ ...base, connections: 1 }, { asked: 'rsync' }), /--engine rsync cannot carry this run: .*--connections 2 or more/);
    assert.throws(() => choosePath({ ...base, rsync: undefined }, { asked: 'rsync' }), /rsync is not installed on this host/);
    assert.throws(() => choosePath({ ...base, probe: probe(MiB) }, { asked: 'sftp' }), /not enough space to stage/);
    assert.throws(() => choosePath({ ...base, command: 'pull' }, { asked: 'sftp' }), /it can only send/);
    assert.equal(choosePath(base, { asked: 'stream' }).path.name, 'stream');
  });

  it('pull gets every path that can read: openssh by default, stream without ssh', () => {
    assert.equal(choosePath({ ...base, command: 'pull' }).path.name, 'openssh');
    const noSsh = choosePath({ ...base, command: 'pull', ssh: undefined, probe: probe(100 * 2 ** 30) });
    assert.equal(noSsh.path.name, 'stream');
    assert.deepEqual(noSsh.warnings, [], 'a pull never stages, so skipping sftp is not news');
  });

  it('copy is local, whatever is asked', () => {
    assert.equal(choosePath({ ...base, command: 'copy' }).path.name, 'local');
  });

  it('a resume keeps its recorded path where it can, else streams, and says why', () => {
    assert.equal(choosePath(base, { recorded: 'sftp' }).path.name, 'sftp');
    const r = choosePath({ ...base, connections: 1 }, { recorded: 'openssh' });
    assert.equal(r.path.name, 'stream');
    assert.match(r.warnings[0]!, /resuming --via stream: --via openssh cannot carry it now \(--via openssh needs --connections 2 or more/);
    // An override is asked for: it must work.
    assert.equal(choosePath(base, { recorded: 'openssh', asked: 'rsync' }).path.name, 'rsync');
    assert.throws(() => choosePath({ ...base, connections: 1 }, { recorded: 'stream', asked: 'openssh' }), UsageError);
  });

  it('each path names its option and its share of the TCP connections', () => {
    assert.equal(optionFor('rsync'), '--engine rsync');
    assert.equal(optionFor('sftp'), '--via sftp');
    assert.equal(PATHS.openssh.poolConnections(4), 1, 'the masters carry the blocks');
    assert.equal(PATHS.rsync.poolConnections(4), 3, 'one ControlMaster for rsync');
    assert.equal(PATHS.stream.poolConnections(4), 4);
    assert.equal(PATHS.sftp.poolConnections(4), 4);
  });
});
