// Gate for tests that need real system parts (root, sshd, losetup, rsync,
// xxhsum ...). Locally a missing part skips the test; in CI it fails it, so a
// broken CI image can never turn the integration suite silently green.

export { commandPath, haveCommand, haveRoot } from '../../src/demo/system.js';

export function requireReal(ctx: Mocha.Context, what: string, available: boolean): void {
  if (available) return;
  if (process.env.CI === 'true') throw new Error(`CI requires ${what}`);
  ctx.skip();
}
