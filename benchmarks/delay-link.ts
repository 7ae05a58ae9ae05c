// Build a delay link and check it, without ddt:
//
//   node --import tsx benchmarks/delay-link.ts [--rate 100mbit] [--rtt 40] [--mib 512] [--runs 2] [--pings 20] [--ssh 5]
//
// Prints ping's RTT against the asked RTT, what one raw TCP stream of MIB MiB gets against the
// theory (tbf rate less headers, or one send buffer per round trip), the delay line's CPU
// seconds and counters, and the wall time of `ssh HOST true` (a fresh connection each time)
// through a private sshd in the far namespace. Run as root; everything it makes is removed at
// the end, on error and on Ctrl-C.

import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runCleanups } from '../test/harness/hooks.js';
import { makeTempDir, removeTempDirs } from '../test/harness/loop.js';
import { startSshd } from '../test/harness/sshd.js';
import { createDelayLink } from './lib/delay-link.js';
import { ping, rawTcp, sshTrue, tcpTheory } from './lib/link-check.js';
import { startSshdIn } from './lib/netns.js';

const { values: o } = parseArgs({
  options: {
    rate: { type: 'string', default: '100mbit' },
    rtt: { type: 'string', default: '40' },
    mib: { type: 'string', default: '512' },
    runs: { type: 'string', default: '2' },
    pings: { type: 'string', default: '20' },
    ssh: { type: 'string', default: '5' },
  },
});

const mb = (bytesPerS: number) => `${(bytesPerS / 1e6).toFixed(2)} MB/s`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1]!;

async function main(): Promise<void> {
  const work = await makeTempDir('ddt-delay-link-');
  const rttMs = Number(o.rtt);
  const link = await createDelayLink({ rate: o.rate!, rttMs, work, log: (l) => console.log(l) });
  try {
    console.log(`delay link: ${link.rate}, RTT ${rttMs} ms (${link.nsA} → ${link.nsB})`);
    for (const c of link.commands) console.log(`  ${c}`);
    const p = ping(link, Number(o.pings));
    console.log(`ping ×${p.count}: min/avg/max/mdev ${p.min}/${p.avg}/${p.max}/${p.mdev} ms, ${p.loss}; avg ${(((p.avg - rttMs) / rttMs) * 100).toFixed(1)} % off the asked ${rttMs} ms`);

    const th = tcpTheory(link);
    console.log(
      `TCP theory (${th.congestion}, tcp_wmem max ${th.wmemMax}, tcp_rmem max ${th.rmemMax}): rate limit ${mb(th.rateLimit)}, ` +
        `send-buffer limit ${mb(th.windowLimit)} → at most ${mb(th.bound)}`,
    );
    const file = join(work, 'zeros.img');
    await writeFile(file, '');
    await truncate(file, Number(o.mib) * 2 ** 20); // sparse: read from the page cache at no cost
    for (let i = 0; i < Number(o.runs); i++) {
      const r = await rawTcp(link, file, 5001);
      const rate = r.bytes / r.seconds;
      console.log(
        `raw TCP ${o.mib} MiB: ${r.seconds.toFixed(2)} s, ${mb(rate)} = ${((rate / th.bound) * 100).toFixed(1)} % of the bound; ` +
          `delay line CPU ${r.lineCpu.toFixed(2)} s; ss near the end: unacked ${r.unacked ?? '?'} segments, ${r.sndbufLimited ?? '?'}, minrtt ${r.minRttMs ?? '?'} ms`,
      );
    }
    console.log((await link.stats()).join('\n'));

    const sshd = await startSshd();
    const netSshd = await startSshdIn(link, sshd, 2222, 'delaylink');
    try {
      const times = sshTrue(link, netSshd.sshArgs(), `${sshd.user}@${link.addrB}`, Number(o.ssh));
      console.log(`ssh HOST true ×${times.length}: median ${median(times).toFixed(2)} s (${times.map((t) => t.toFixed(2)).join(', ')}) = ${(median(times) / (rttMs / 1000)).toFixed(1)} RTTs`);
    } finally {
      await netSshd.stop();
      await sshd.stop();
    }
  } finally {
    link.close();
    await removeTempDirs();
  }
}

main().then(
  () => runCleanups(),
  (err: unknown) => {
    process.stderr.write(`delay-link: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    runCleanups();
    process.exitCode = 1;
  },
);
