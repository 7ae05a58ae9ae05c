/**
 * Nothing raw reaches the terminal: strings from a journal, a remote host or an error may carry
 * escape sequences (a crafted journal could retitle the terminal, clear the screen and print a
 * fake "All good"). Control characters are shown as `?`; a newline stays where a multi-line
 * message wants one.
 */
// C0 controls but newline, DEL, and the C1 controls (which some terminals take as ESC + letter).
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g;

export function clean(text: string, o: { newlines?: boolean } = {}): string {
  const out = text.replace(CONTROL, '?');
  return o.newlines === false ? out.replace(/\n/g, ' ') : out;
}
