import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shCommand, shQuote, validateRemotePath } from '../../src/remote/quote.js';

// What each argument arrives as, parsed by a real POSIX shell (dash).
function argsSeenBy(shell: string, command: string): string[] {
  const out = execFileSync(shell, ['-c', `set -- ${command}; for a in "$@"; do printf '%s\\0' "$a"; done`]);
  return out.toString('utf8').split('\0').slice(0, -1);
}

describe('remote/quote', () => {
  const nasty = [
    '/dev/loop0; touch /tmp/x',
    "it's",
    "''",
    '$(id) `id` ${HOME} $HOME',
    'a\\b"c\'d',
    ' leading and trailing ',
    '*?[a]{b,c}~',
    '-n',
    '',
    'ünïcødé ∑',
    'tab\there',
    'line\nbreak',
  ];

  for (const shell of ['dash', 'bash']) {
    it(`${shell} sees every quoted word as exactly one argument`, () => {
      assert.deepEqual(argsSeenBy(shell, nasty.map(shQuote).join(' ')), nasty);
    });
  }

  it('leaves plain words readable', () => {
    assert.equal(shQuote('/dev/vdb'), '/dev/vdb');
    assert.equal(shQuote('serve'), 'serve');
    assert.equal(shQuote('a b'), "'a b'");
    assert.equal(shQuote(''), "''");
    assert.equal(shQuote('~'), "'~'");
  });

  it('a path with shell metacharacters is a path, never shell', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ddt-quote-'));
    try {
      const marker = join(dir, 'x');
      const evil = `/dev/null; touch ${marker}; echo $(touch ${marker}2)`;
      const out = execFileSync('sh', ['-c', shCommand('printf', '%s', evil)]).toString();
      assert.equal(out, evil);
      assert.equal(existsSync(marker), false);
      assert.equal(existsSync(`${marker}2`), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses NUL bytes', () => {
    assert.throws(() => shQuote('a\0b'), UsageError);
  });

  it('validateRemotePath accepts absolute one-line paths', () => {
    assert.equal(validateRemotePath('/dev/vdb'), '/dev/vdb');
    assert.equal(validateRemotePath('/dev/loop0; touch /tmp/x'), '/dev/loop0; touch /tmp/x');
  });

  it('validateRemotePath refuses relative, empty, NUL and newline paths with exit 2', () => {
    for (const bad of ['dev/vdb', '', '/dev/vdb\n', '/a\0b', '/a\rb', '~/x']) {
      assert.throws(
        () => validateRemotePath(bad),
        (err: unknown) => err instanceof UsageError && err.exitCode === 2,
        JSON.stringify(bad),
      );
    }
  });
});
