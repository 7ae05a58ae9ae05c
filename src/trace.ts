/**
 * Phase times on stderr when DDT_DEBUG is set: where a run's start-up spends its round trips
 * (`ddt: +0.412 s helper installed`). Off by default; never part of the JSON output.
 */
const on = Boolean(process.env.DDT_DEBUG);
const t0 = process.hrtime.bigint();

export function trace(what: string): void {
  if (!on) return;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stderr.write(`ddt: +${s.toFixed(3)} s ${what}\n`);
}
