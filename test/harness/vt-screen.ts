// A tiny VT100 screen: replays what a program wrote to a terminal (text, CR, LF, and the CSI
// sequences readline and cli-progress use: cursor up/down/left/right/column/position, erase in
// line and in display) and returns the lines a user would see. No scrolling region and no
// wrapping: the screen grows downwards, which is all the tests need to tell what is visible.

const CSI = /^\x1b\[([?\d;]*)([@-~])/;

export function renderScreen(output: string): string[] {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  const line = (): string[] => (lines[row] ??= []);
  for (let i = 0; i < output.length; i++) {
    const c = output[i]!;
    if (c === '\x1b') {
      const m = CSI.exec(output.slice(i, i + 24));
      if (!m) {
        i++; // a two-character escape (ESC 7, ESC =, …): nothing the tests look at
        continue;
      }
      i += m[0].length - 1;
      const params = m[1]!.startsWith('?') ? [] : m[1]!.split(';').map((p) => (p === '' ? undefined : Number(p)));
      const n = params[0] ?? 1;
      switch (m[2]) {
        case 'A':
          row = Math.max(0, row - n);
          break;
        case 'B':
          row += n;
          break;
        case 'C':
          col += n;
          break;
        case 'D':
          col = Math.max(0, col - n);
          break;
        case 'G':
          col = n - 1;
          break;
        case 'H':
          row = (params[0] ?? 1) - 1;
          col = (params[1] ?? 1) - 1;
          break;
        case 'K': {
          const mode = params[0] ?? 0;
          if (mode === 2) lines[row] = [];
          else if (mode === 1) line().fill(' ', 0, col + 1);
          else line().length = Math.min(line().length, col);
          break;
        }
        case 'J': {
          const mode = params[0] ?? 0;
          if (mode === 0) {
            line().length = Math.min(line().length, col);
            lines.length = row + 1;
          } else if (mode === 2) lines.length = 0;
          break;
        }
        default:
          break; // colours, cursor shown/hidden: nothing on the screen moves
      }
    } else if (c === '\r') col = 0;
    else if (c === '\n') row++;
    else if (c === '\b') col = Math.max(0, col - 1);
    else if (c >= ' ') {
      const l = line();
      while (l.length < col) l.push(' ');
      l[col++] = c;
    }
  }
  const out: string[] = [];
  for (let r = 0; r < lines.length; r++) out.push((lines[r] ?? []).join('').trimEnd());
  return out;
}

/** The screen's last line with something on it. */
export function lastVisibleLine(screen: string[]): string {
  return screen.filter((l) => l.trim() !== '').at(-1) ?? '';
}
