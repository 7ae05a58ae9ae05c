// The benchmark scenarios, in full and --quick sizes.

import { classic, ddSsh, ddSshSparse, ddt, readBothSides, rsyncDevice, rsyncInplace, sshTrue, tcpRaw, type Method } from './methods.js';

export type Fill = 'mixed' | 'random' | 'sparse' | 'islands';

export interface ImageSpec {
  fill: Fill;
  mib: number;
  seed: number;
  /** fill `islands`: this many runs of random data of `mib` MiB each, the rest holes */
  islands?: { count: number; mib: number };
}

export interface Scenario {
  id: string;
  title: string;
  image: ImageSpec;
  link: 'loopback' | 'shaped' | 'delay';
  /** link 'delay': tbf rate (tc syntax) and the round-trip time the delay line adds */
  delay?: { rate: string; rttMs: number };
  methods: Method[];
  /**
   * re-sync: the target starts as the source with `fraction` of its `unitBytes` units overwritten,
   * scattered, or `clustered` in runs of 1–32 units (as a live VM disk changes)
   */
  resync?: { unitBytes: number; fraction: number; clustered?: boolean };
  /** kill-and-resume: the composite method `ddt-kill-resume` is killed at this percent verified */
  killAtPercent?: number;
  /**
   * What the methods write: a loop device (default) or a file on the "remote" side. With
   * `fresh`, every run starts on an all-hole target and its allocation is measured after it.
   */
  target?: 'loop' | 'file';
  fresh?: boolean;
}

export const MiB = 1024 * 1024;

/** ddt's composite method in the kill-and-resume scenario (the runner handles it by this id). */
export const KILL_RESUME_ID = 'ddt-kill-resume';
const killResume = (extra: string[]) => ddt(KILL_RESUME_ID, 'SIGKILL at 50 % verified, then ddt resume JOURNAL', extra);

/** Re-sync: ddt at the default block size and at 1 MiB, rsync's delta onto the file and onto the device. */
function resyncMethods(): Method[] {
  return [ddt('ddt', 'default block size', ['--skip-identical']), ddt('ddt-1M', '', ['-b', '1M', '--skip-identical']), rsyncInplace(['--no-whole-file']), rsyncDevice(['--no-whole-file'])];
}

export function scenarios(quick: boolean): Scenario[] {
  // --quick: about two minutes, to see that everything works (sizes too small for the targets:
  // connection set-up dominates).
  const big = quick ? 128 : 2048;
  const part = (quick ? 64 : 256) * MiB;
  return [
    {
      id: 'fresh-mixed',
      title: `Fresh copy, ${big} MiB mixed image (≈ 40 % random, 40 % zeros, 20 % text) → loop device, loopback sshd`,
      image: { fill: 'mixed', mib: big, seed: 1 },
      link: 'loopback',
      methods: [
        ddt('ddt', 'defaults'),
        ddSsh,
        ddt('ddt-stream', '', ['--via', 'stream']),
        classic(part),
        ddt('ddt-sftp', '', ['--via', 'sftp']),
        rsyncInplace(),
        ddt('ddt-rsync', '', ['--engine', 'rsync']),
      ],
    },
    {
      id: 'incompressible',
      title: `Fresh copy, ${big} MiB incompressible (random) image → loop device, loopback sshd`,
      image: { fill: 'random', mib: big, seed: 2 },
      link: 'loopback',
      methods: [
        ddt('ddt', 'defaults'),
        ddSsh,
        ddt('ddt-stream', '', ['--via', 'stream']),
        classic(part),
        ddt('ddt-stream-nocompress', '', ['--via', 'stream', '--compress', 'none']),
        rsyncInplace(),
      ],
    },
    {
      id: 'resync-1pct',
      title: `Re-sync: ${big} MiB mixed image, target differs in 1 % of its 1 MiB units (scattered)`,
      image: { fill: 'mixed', mib: big, seed: 1 },
      link: 'loopback',
      methods: resyncMethods(),
      resync: { unitBytes: MiB, fraction: 0.01 },
    },
    {
      id: 'resync-10pct',
      title: `Re-sync: ${big} MiB mixed image, target differs in 10 % of its 1 MiB units, clustered in runs of 1–32 MiB`,
      image: { fill: 'mixed', mib: big, seed: 1 },
      link: 'loopback',
      methods: resyncMethods(),
      resync: { unitBytes: MiB, fraction: 0.1, clustered: true },
    },
    {
      id: 'resync-0pct',
      title: `Re-sync: ${big} MiB mixed image, target already identical (the cost of proving it)`,
      image: { fill: 'mixed', mib: big, seed: 1 },
      link: 'loopback',
      methods: [...resyncMethods(), readBothSides],
      resync: { unitBytes: MiB, fraction: 0 },
    },
    {
      // The same at four times the size: what proving identity costs per GiB once ddt's fixed
      // set-up (start, connection, helper, lock, records) is a smaller share of the run.
      id: 'resync-0pct-large',
      title: `Re-sync: ${big * 4} MiB mixed image, target already identical (the cost of proving it, at four times the size)`,
      image: { fill: 'mixed', mib: big * 4, seed: 1 },
      link: 'loopback',
      methods: [ddt('ddt', 'default block size', ['--skip-identical']), readBothSides],
      resync: { unitBytes: MiB, fraction: 0 },
    },
    {
      // The same over a link with latency, as between two real hosts: the set-up's round trips
      // (install and probe, lock, a worker's session) against the target's checksums, which ddt
      // starts on the first session after connecting (beside the set-up) unless told not to.
      id: 'resync-0pct-rtt',
      title: `Re-sync: ${big} MiB mixed image, target already identical, over 1 Gbit/s with 40 ms RTT (tbf + delay line between two network namespaces)`,
      image: { fill: 'mixed', mib: big, seed: 1 },
      link: 'delay',
      delay: { rate: '1gbit', rttMs: 40 },
      methods: [ddt('ddt', 'default block size', ['--skip-identical']), ddt('ddt-locked-first', 'the target hashed once locked', ['--skip-identical'], ['DDT_PREHASH=off']), readBothSides],
      resync: { unitBytes: MiB, fraction: 0 },
    },
    {
      // 1 % changed over a link with latency: the data path's own connections and sessions,
      // which a re-sync opens only for a block that differs, cost round trips here.
      id: 'resync-1pct-rtt',
      title: `Re-sync: ${big} MiB mixed image, 1 % of its MiB units changed (scattered), over 1 Gbit/s with 40 ms RTT (tbf + delay line between two network namespaces)`,
      image: { fill: 'mixed', mib: big, seed: 1 },
      link: 'delay',
      delay: { rate: '1gbit', rttMs: 40 },
      methods: [ddt('ddt', 'default block size', ['--skip-identical']), rsyncInplace(['--no-whole-file']), rsyncDevice(['--no-whole-file'])],
      resync: { unitBytes: MiB, fraction: 0.01 },
    },
    {
      id: 'sparse',
      title: `${quick ? '512 MiB' : '16 GiB'} sparse image (≈ 5 % data, the rest zeros) → loop device, loopback sshd`,
      image: { fill: 'sparse', mib: quick ? 512 : 16384, seed: 3 },
      link: 'loopback',
      methods: [ddt('ddt', 'defaults'), ddSsh, ddt('ddt-target-zeroed', '', ['--target-zeroed']), rsyncInplace(['--sparse'])],
    },
    ...[
      { target: 'file' as const, what: `a sparse ${quick ? '2 GiB' : '64 GiB'} file` },
      { target: 'loop' as const, what: 'a loop device over a sparse file' },
    ].map(
      ({ target, what }): Scenario => ({
        id: `sparse-islands-${target}`,
        title: `${quick ? '2 GiB' : '64 GiB'} sparse image, ${quick ? '10 × 2' : '10 × 20'} MiB of random data, the rest holes → ${what}, loopback sshd`,
        image: { fill: 'islands', mib: quick ? 2048 : 65536, seed: 5, islands: { count: 10, mib: quick ? 2 : 20 } },
        link: 'loopback',
        methods: [ddt('ddt', 'defaults'), ddSshSparse],
        target,
        fresh: true,
      }),
    ),
    {
      id: 'shaped-100mbit',
      title: `${quick ? 16 : 512} MiB incompressible image over a tbf-shaped 100 Mbit/s veth link between two network namespaces (no added latency)`,
      image: { fill: 'random', mib: quick ? 16 : 512, seed: 4 },
      link: 'shaped',
      methods: [ddt('ddt', 'defaults'), ddSsh, tcpRaw, rsyncInplace()],
    },
    {
      // Progress events come once a second: --quick needs a run of a few seconds and enough
      // blocks for the kill to land in the middle.
      id: 'kill-resume',
      title: `Kill and resume: ${quick ? 256 : big} MiB mixed image, ddt SIGKILLed at 50 % verified, then ddt resume`,
      image: { fill: 'mixed', mib: quick ? 256 : big, seed: 1 },
      link: 'loopback',
      methods: [ddt('ddt', 'uninterrupted', quick ? ['-b', '8M'] : []), killResume(quick ? ['-b', '8M'] : []), ddSsh],
      killAtPercent: 50,
    },
    latency('latency-100mbit-40ms', '100mbit', 40, quick),
    latency('latency-400mbit-100ms', '400mbit', 100, quick),
  ];
}

/** `--only latency` runs these. */
export const LATENCY_GROUP = 'latency';

// Links with latency: tbf for the rate and the userspace delay line (lib/delay-link.ts) for
// the RTT; at 400 Mbit/s × 100 ms one OpenSSH channel's 2 MiB window caps a single stream.
function latency(id: string, rate: string, rttMs: number, quick: boolean): Scenario {
  const mib = quick ? 64 : 1024;
  return {
    id,
    title: `${size(mib)} incompressible image over ${rate.replace('mbit', ' Mbit/s')} with ${rttMs} ms RTT (tbf + delay line between two network namespaces) → loop device`,
    image: { fill: 'random', mib, seed: 5 },
    link: 'delay',
    delay: { rate, rttMs },
    methods: [tcpRaw, ddSsh, ddt('ddt', 'defaults'), ddt('ddt-sftp', '', ['--via', 'sftp']), ddt('ddt-stream', '', ['--via', 'stream']), sshTrue],
  };
}

const size = (mib: number) => (mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`);
