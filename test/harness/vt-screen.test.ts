// The screen model the terminal tests judge by: it must see a redraw that overwrites a line.
import assert from 'node:assert/strict';
import { lastVisibleLine, renderScreen } from './vt-screen.js';

describe('harness/vt-screen', () => {
  it('a line drawn above and redrawn with cursor-up overwrites what was written below it', () => {
    const out = 'bar 0%\x1b[0K\r\nQuestion? [y/N] ' + '\x1b[1A\x1b[1Gbar 10%\x1b[0K\r\nbar line 2\x1b[0K';
    const screen = renderScreen(out);
    assert.deepEqual(screen, ['bar 10%', 'bar line 2']);
    assert.equal(lastVisibleLine(screen), 'bar line 2');
  });

  it('keeps text written at a column, and erases to the end of the screen', () => {
    assert.deepEqual(renderScreen('\x1b[1G\x1b[0JAsk? \x1b[6Gy\r\nnext'), ['Ask? y', 'next']);
    assert.deepEqual(renderScreen('one\r\ntwo\r\nthree\x1b[2A\x1b[1G\x1b[0J'), ['']);
    assert.deepEqual(renderScreen('abcdef\x1b[3G\x1b[K'), ['ab']);
  });
});
