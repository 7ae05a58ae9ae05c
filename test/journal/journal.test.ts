import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JournalWriter, readJournal, isProven } from '../../src/journal/journal.js';
import { journalStatus } from '../../src/journal/status.js';
import { testHeader } from '../harness/header.js';
import { makeTempDir } from '../harness/loop.js';

const header = testHeader({ source: '/src.img', target: '/dst.img', size: 3000, blockSize: 1024 });
const [A, B, C, D] = ['aa', 'bb', 'cc', 'dd'].map((x) => x.repeat(8));

describe('journal', () => {
  let dir: string;
  before(async () => (dir = await makeTempDir('ddt-journal-')));

  it('folds block records (last wins), ignores a torn last line, and reports status', () => {
    const path = join(dir, 'a.journal');
    const w = JournalWriter.create(path, header);
    w.run({ event: 'start', pid: 1 });
    w.block({ block: 0, state: 'verified', source: A, target: A, how: 'data' });
    w.block({ block: 1, state: 'failed', source: B, target: C, reason: 'checksum mismatch after write' });
    w.close();
    appendFileSync(path, '{"type":"block","block":2,"state":"veri'); // a crash mid-write
    const st = readJournal(path);
    assert.equal(st.tornLines, 1);
    assert.ok(isProven(st.blocks.get(0)));
    assert.ok(!isProven(st.blocks.get(1)));
    assert.equal(st.blocks.get(2), undefined);
    const s = journalStatus(st, path);
    assert.equal(s.verified, 1);
    assert.equal(s.pending, 2);
    assert.equal(s.failed, 1);
    assert.equal(s.bytesVerified, 1024);
    assert.match(s.lastError ?? '', /block 1: checksum mismatch/);

    // Appending after a torn line starts on a fresh line, so the next record is readable.
    const again = JournalWriter.append(path);
    again.block({ block: 2, state: 'verified', source: D, target: D });
    again.close();
    const st2 = readJournal(path);
    assert.ok(isProven(st2.blocks.get(2)));
    assert.ok(readFileSync(path, 'utf8').endsWith('\n'));
  });

  it('status lists unreadable ranges in the source\'s order, whatever order their blocks were proven in', () => {
    const path = join(dir, 'bad-order.journal');
    const w = JournalWriter.create(path, header);
    w.run({ event: 'start', pid: 1 });
    // As a run records them: the unreadable ranges, then the proof.
    w.block({ block: 2, state: 'bad', ranges: [{ offset: 2100, length: 100 }] });
    w.block({ block: 2, state: 'verified', source: C, target: C });
    w.block({ block: 1, state: 'bad', ranges: [{ offset: 1024, length: 512 }] });
    w.block({ block: 1, state: 'verified', source: B, target: B });
    w.close();
    assert.deepEqual(journalStatus(readJournal(path), path).badRanges, [
      { offset: 1024, length: 512 },
      { offset: 2100, length: 100 },
    ]);
  });

  it('a verified record whose checksums differ is not proof', () => {
    assert.equal(isProven({ state: 'verified', source: 'a', target: 'b' }), false);
    assert.equal(isProven({ state: 'verified', source: 'a' }), false);
  });

  it('refuses to create over an existing journal and to read a non-journal', () => {
    const path = join(dir, 'b.journal');
    JournalWriter.create(path, header).close();
    assert.throws(() => JournalWriter.create(path, header), (e: unknown) => e instanceof UsageError && e.code === 'JOURNAL_EXISTS');
    const junk = join(dir, 'junk.journal');
    appendFileSync(junk, 'hello\n');
    assert.throws(() => readJournal(junk), UsageError);
    assert.throws(() => readJournal(join(dir, 'missing.journal')), UsageError);
  });

  it('the way to a remote end (jump hosts, ssh config settings) is read back as recorded, and checked', () => {
    const remote = {
      hosts: ['10.0.0.9'],
      port: 22,
      user: 'root',
      identityFiles: ['/k'],
      userKnownHosts: ['/kh/a', '/kh/b'],
      identitiesOnly: true,
      connectTimeoutMs: 9000,
      serverAliveIntervalMs: 5000,
      jump: 'ops@gw:2222,inner',
      sshConfig: '/etc/ddt/ssh_config',
    };
    const send = (r: object) => ({ ...testHeader({ source: '/src.img', target: '/dev/vdb', size: 3000, blockSize: 1024, command: 'send', path: { name: 'stream' } }), target: { path: '/dev/vdb', size: 3000, remote: r } });
    const good = join(dir, 'remote.journal');
    JournalWriter.create(good, send(remote) as never).close();
    const recorded = remote;
    assert.deepEqual(readJournal(good).header.target.remote, recorded);
    for (const [field, value] of [['connectTimeoutMs', -1], ['identitiesOnly', 'yes'], ['userKnownHosts', 'not-a-list'], ['jump', 'gw\nProxyCommand x']] as const) {
      const bad = join(dir, `remote-${field}.journal`);
      JournalWriter.create(bad, send({ ...recorded, [field]: value }) as never).close();
      assert.throws(() => readJournal(bad), (err: Error) => err instanceof UsageError && err.message.includes(`target.remote.${field}`));
    }
  });

  it('--fix-gpt is kept for resume; absent it is off, and anything but a boolean is refused', () => {
    const fixing = join(dir, 'fix.journal');
    JournalWriter.create(fixing, { ...header, options: { ...header.options, fixGpt: true } }).close();
    assert.equal(readJournal(fixing).header.options.fixGpt, true);
    const plain = join(dir, 'plain.journal');
    JournalWriter.create(plain, header).close();
    assert.equal(readJournal(plain).header.options.fixGpt, undefined);
    const bad = join(dir, 'bad-fix.journal');
    appendFileSync(bad, JSON.stringify({ ...header, options: { ...header.options, fixGpt: 'yes' } }) + '\n');
    assert.throws(() => readJournal(bad), (e: unknown) => e instanceof UsageError && /options\.fixGpt/.test(e.message));
  });
});
