// A re-sync's target checksums read before the lock: what the helper's first line says, and
// when the run may take what was read (the lock's record unchanged, the self-tested ddt-hash).
import assert from 'node:assert/strict';
import { prehashRefused } from '../../src/engine/early-hashes.js';
import { parsePrehashStart } from '../../src/remote/prehash.js';

describe('prehash: its first line, and when its checksums stand', () => {
  const hasher = 'ddt-hash-x86_64-0123456789abcdef';
  const ok = { name: hasher, answer: 'hasher=ok' };

  it('reads PREHASH with the record as the lock prints it, and NO with its reason', () => {
    assert.deepEqual(parsePrehashStart(`PREHASH ${hasher} last=none`), { ok: true, hasher, last: undefined });
    assert.deepEqual(parsePrehashStart(`PREHASH ${hasher} last=job=j1 run=j1.x state=clean`), { ok: true, hasher, last: { job: 'j1', run: 'j1.x', state: 'clean' } });
    assert.deepEqual(parsePrehashStart('NO busy'), { ok: false, why: 'busy' });
    assert.equal(parsePrehashStart(undefined).ok, false);
    assert.equal(parsePrehashStart('sh: 1: stat: not found').ok, false);
    assert.equal(parsePrehashStart('PREHASH /bin/sh last=none').ok, false, 'only a hasher name');
  });

  it('stands only with the same record and the hasher whose self-test passed', () => {
    const found = parsePrehashStart(`PREHASH ${hasher} last=job=j1 run=j1.x state=clean`);
    const same = { job: 'j1', run: 'j1.x', state: 'clean' } as const;
    assert.equal(prehashRefused(found, same, ok), undefined);
    assert.match(prehashRefused(found, { ...same, run: 'j1.y' }, ok)!, /record of the last writer changed/);
    assert.match(prehashRefused(found, { ...same, state: 'writing' }, ok)!, /record/);
    assert.match(prehashRefused(found, undefined, ok)!, /record/, 'a record that went is a change too');
    assert.match(prehashRefused(parsePrehashStart(`PREHASH ${hasher} last=none`), same, ok)!, /record/);
    assert.equal(prehashRefused(parsePrehashStart(`PREHASH ${hasher} last=none`), undefined, ok), undefined);
    assert.match(prehashRefused(found, same, { name: hasher, answer: 'hasher=failed self-test: x' })!, /self-test/);
    assert.match(prehashRefused(found, same, { name: 'ddt-hash-x86_64-fedcba9876543210', answer: 'hasher=ok' })!, /self-test/);
    assert.match(prehashRefused(found, same, undefined)!, /self-test/);
    assert.equal(prehashRefused({ ok: false, why: 'busy' }, same, ok), 'busy');
  });
});
