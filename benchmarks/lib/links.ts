// Where each scenario's methods connect to: the loopback sshd, the tbf-shaped veth link (one for
// the whole run), or a link with latency (made for its scenario, removed when the next scenario
// or the end comes). Each non-loopback link gets its own sshd in the far namespace (the loopback
// one's keys and config) and a raw TCP sink; the commands that built it go to RESULTS.md.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { TestSshd } from '../../test/harness/sshd.js';
import { createDelayLink, type DelayLink } from './delay-link.js';
import { ping } from './link-check.js';
import { TCP_LINK, type Endpoint } from './methods.js';
import { createShapedLink, startSshdIn, type NetnsSshd, type ShapedLink } from './netns.js';
import type { ScenarioContext } from './runner.js';
import type { Scenario } from './scenarios.js';

export const TCP_PORT = 5001;

export type LinkContext = Pick<ScenarioContext, 'ep' | 'server' | 'linkTxBytes' | 'probe'>;

interface Far {
  sshd: NetnsSshd;
  close(): Promise<void>;
}

async function farEnd(link: { nsB: string; addrB: string }, base: TestSshd, name: string): Promise<Far> {
  const sshd = await startSshdIn(link, base, 2222, name);
  const sink = spawn('ip', ['netns', 'exec', link.nsB, process.execPath, TCP_LINK, 'sink', link.addrB, String(TCP_PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    sink.stdout.once('data', () => resolve());
    sink.once('exit', (code) => reject(new Error(`tcp sink exited (${code})`)));
  });
  sink.unref();
  return {
    sshd,
    close: async () => {
      sink.kill('SIGKILL');
      await sshd.stop();
    },
  };
}

function endpoint(far: Far, base: TestSshd, execA: string[]): Pick<LinkContext, 'ep' | 'server'> {
  const s = far.sshd;
  const ep: Endpoint = { host: s.host, port: s.port, user: base.user, clientKeyPath: s.clientKeyPath, knownHostsPath: s.knownHostsPath, sshArgs: s.sshArgs(), exec: execA };
  return { ep, server: { pid: s.pid, port: s.port, logPath: s.logPath } };
}

/** ddt's journal: seconds from the spawn (Date.now() ms) to its run record and to its first verified block. */
export function journalTimes(journal: string, startedMs: number): { runStartS?: number; firstVerifiedS?: number } {
  let text = '';
  try {
    text = readFileSync(journal, 'utf8');
  } catch {
    return {};
  }
  const out: { runStartS?: number; firstVerifiedS?: number } = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line) as { type?: string; event?: string; state?: string; time?: string };
    const at = r.time ? (Date.parse(r.time) - startedMs) / 1000 : undefined;
    if (r.type === 'run' && r.event === 'start' && out.runStartS === undefined) out.runStartS = at;
    if (r.type === 'block' && r.state === 'verified' && out.firstVerifiedS === undefined) out.firstVerifiedS = at;
  }
  return out;
}

export class Links {
  private shaped?: { link: ShapedLink; far: Far };
  private delay?: { sc: string; link: DelayLink; far: Far };

  constructor(
    private readonly base: TestSshd,
    private readonly loopback: Pick<LinkContext, 'ep' | 'server'>,
    private readonly work: string,
    /** RESULTS.md's set-up section */
    private readonly setup: string[],
    private readonly log: (line: string) => void,
  ) {}

  async for(sc: Scenario): Promise<LinkContext> {
    if (sc.link !== 'delay') await this.closeDelay();
    if (sc.link === 'loopback') return this.loopback;
    if (sc.link === 'shaped') {
      if (!this.shaped) {
        const link = createShapedLink('100mbit');
        this.shaped = { link, far: await farEnd(link, this.base, 'netns') };
        this.setup.push('# shaped link (benchmarks/lib/netns.ts)', ...link.commands, ...this.farCommands(link, 'netns'));
      }
      const { link, far } = this.shaped;
      return { ...endpoint(far, this.base, link.execA), linkTxBytes: link.txBytesA };
    }
    if (this.delay?.sc !== sc.id) {
      await this.closeDelay();
      const { rate, rttMs } = sc.delay!;
      const link = await createDelayLink({ rate, rttMs, work: this.work, log: this.log });
      this.delay = { sc: sc.id, link, far: await farEnd(link, this.base, `delay${rttMs}`) };
      const p = ping(link, 20);
      this.log(`${sc.id}: delay link ${rate}, ${rttMs} ms: ping min/avg/max/mdev ${p.min}/${p.avg}/${p.max}/${p.mdev} ms, ${p.loss}`);
      this.setup.push(
        `# ${sc.id}: delay link (benchmarks/lib/delay-link.ts, lib/delayline.c)`,
        ...link.commands,
        ...this.farCommands(link, `delay${rttMs}`),
        `# ping -c 20 -i 0.2 from ns A before the rounds: min/avg/max/mdev ${p.min}/${p.avg}/${p.max}/${p.mdev} ms, ${p.loss}`,
      );
    }
    const { link, far } = this.delay!;
    return {
      ...endpoint(far, this.base, link.execA),
      linkTxBytes: link.txBytesA,
      probe: () => {
        const cpu0 = link.cpuSeconds();
        return (r, env) => ({ firstDataS: link.firstDataAfter(r.startedNs), ...journalTimes(env.journal, r.startedMs), lineCpuS: link.cpuSeconds() - cpu0 });
      },
    };
  }

  private farCommands(link: { nsB: string; addrB: string }, name: string): string[] {
    return [
      `ip netns exec ${link.nsB} /usr/sbin/sshd -D -f sshd_config.${name} -E sshd.${name}.log   # the loopback config with Port 2222, ListenAddress ${link.addrB}`,
      `ip netns exec ${link.nsB} node benchmarks/lib/tcp-link.mjs sink ${link.addrB} ${TCP_PORT}   # for the raw TCP run`,
    ];
  }

  private async closeDelay(): Promise<void> {
    if (!this.delay) return;
    const { sc, link, far } = this.delay;
    this.delay = undefined;
    const stats = await link.stats();
    this.setup.push(`# ${sc}: the delay line's counters at the end (late = held > 1 ms longer than asked)`, ...stats.map((l) => `#   ${l}`));
    await far.close();
    link.close();
  }

  async close(): Promise<void> {
    await this.closeDelay();
    if (this.shaped) {
      await this.shaped.far.close();
      this.shaped.link.close();
      this.shaped = undefined;
    }
  }
}
