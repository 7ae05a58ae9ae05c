// The small side-by-side benchmarks (send-vs-ddssh.ts, ab.ts): one image onto a loop device over
// a private loopback sshd, `dd | ssh dd` and ddt command lines for it, and rounds in which every
// method runs once (order rotating), the page cache dropped and the image read back in first.
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { attachLoop, fileOfSize, makeTempDir, type Fill, type LoopDevice } from '../../test/harness/loop.js';
import { startSshd, type TestSshd } from '../../test/harness/sshd.js';
import type { Endpoint } from './methods.js';

export interface Loopback {
  work: string;
  sshd: TestSshd;
  /** How the methods reach `sshd` (the bench's endpoint shape, for its own method lines too). */
  endpoint: Endpoint;
  img: string;
  loop: LoopDevice;
  /** The first baseline: `dd bs=4M | ssh -c aes128-gcm@openssh.com … 'dd of=DEV … conv=notrunc,fdatasync'` */
  ddSsh(): string[];
  /**
   * `ddt send` of the image onto the loop device with its defaults, a journal of its own, `extra`
   * appended; through `at` (another sshd, reached from a namespace) instead of the loopback one.
   */
  ddtSend(cli: string, journalName: string, extra?: string[], at?: Endpoint): string[];
}

/** `directIo`: the loop device reads and writes its backing file with O_DIRECT, as a disk is read. */
export async function loopback(sizeBytes: number, fill: Fill, o: { directIo?: boolean } = {}): Promise<Loopback> {
  const work = await makeTempDir('ddt-bench-alt-');
  const sshd = await startSshd();
  const img = join(work, `${fill}.img`);
  await fileOfSize(img, sizeBytes, fill, 1);
  const target = join(work, 'target.img');
  await fileOfSize(target, sizeBytes, 'zero');
  const loop = await attachLoop(target, o);
  const ssh = ['-p', String(sshd.port), '-i', sshd.clientKeyPath, '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes'];
  const endpoint: Endpoint = { host: sshd.host, port: sshd.port, user: sshd.user, clientKeyPath: sshd.clientKeyPath, knownHostsPath: sshd.knownHostsPath, sshArgs: sshd.sshArgs(), exec: [] };
  return {
    work,
    sshd,
    endpoint,
    img,
    loop,
    ddSsh: () => ['bash', '-o', 'pipefail', '-c', `dd if=${img} bs=4M status=none | ssh -c aes128-gcm@openssh.com ${ssh.join(' ')} root@127.0.0.1 'dd of=${loop.dev} bs=4M conv=notrunc,fdatasync status=none'`],
    ddtSend: (cli, journalName, extra = [], at = endpoint) => [
      ...at.exec, process.execPath, cli, 'send', img, `${at.user}@${at.host}:${loop.dev}`, '-p', String(at.port), '-i', at.clientKeyPath, '--known-hosts', at.knownHostsPath,
      '--yes', '--json', '--progress', 'none', '--journal', join(work, journalName), ...extra,
    ],
  };
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/** Before every run by default: the page cache dropped and the image read back in. */
export const coldCacheWarmImage = (lb: Loopback) => execFileSync('sh', ['-c', `sync; echo 3 > /proc/sys/vm/drop_caches; cat ${lb.img} > /dev/null`]);

/**
 * `runs` rounds, every method once per round, the order rotating by one each round. `check`
 * sees each run's stdout and wall time (throw to stop: e.g. a block not verified) and returns
 * what to print after its time; `prepare` runs before every run. Returns the wall times per method.
 */
export function alternate(
  lb: Loopback,
  methods: Record<string, (round: number) => string[]>,
  runs: number,
  check: (name: string, stdout: string, seconds: number) => string = () => '',
  prepare: (lb: Loopback) => void = coldCacheWarmImage,
): Record<string, number[]> {
  const names = Object.keys(methods);
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < runs; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length]!;
      prepare(lb);
      const argv = methods[name]!(round + 1);
      const t0 = performance.now();
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 });
      const s = (performance.now() - t0) / 1000;
      if (r.status !== 0) throw new Error(`${name} failed (exit ${r.status}): ${r.stderr.slice(-500)}`);
      const note = check(name, r.stdout, s);
      times[name]!.push(s);
      console.log(`round ${round + 1} ${name.padEnd(6)} ${s.toFixed(2)} s${note}`);
    }
  }
  return times;
}

/** A ddt `--json` summary: every block verified, or throw; its bytes on the wire. */
export function verifiedWire(name: string, stdout: string): number {
  const s = JSON.parse(stdout) as { verified: number; blocks: number; bytesOnWire: number };
  if (s.verified !== s.blocks) throw new Error(`${name} did not verify every block`);
  return s.bytesOnWire;
}
