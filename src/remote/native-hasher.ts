/**
 * The streaming hasher on the remote host: ddt-hash, built for the host's architecture (the
 * probe's `uname -m`), put into the work dir and kept there only when its self-test prints what
 * this side computes for the same bytes. It is uploaded once per host and build: a copy that
 * passed is kept beside the work dirs (`.hashers`, named by its bytes), and later runs take it
 * from there, so a re-sync over a slow link does not send its 0.8 MB again each time. Where it
 * cannot run (no build for the architecture, a noexec home, a failed self-test) the helper
 * hashes with its shell tools, as before, after one warning.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { BlockDigester } from '../checksum/block-digest.js';
import { hasherBuild } from '../checksum/ddt-hash.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { helperScript, type RemoteHelper } from './helper.js';
import type { RemoteProbe } from './probe.js';
import { howEnded, runRemote } from './run.js';
import { trace } from '../trace.js';

/** What the self-test prints: the helper script as runs of 7001-byte blocks, 1000-byte units, both algos in both roles. */
export function selfTestExpectation(script: Buffer): string {
  const lines: string[] = [];
  for (const [ualgo, algo] of [
    ['xxh64', 'sha256'],
    ['sha256', 'xxh64'],
  ] as [ChecksumAlgo, ChecksumAlgo][]) {
    for (let at = 0; at < script.length; at += 7001) {
      const block = script.subarray(at, at + 7001);
      const d = new BlockDigester(block.length, algo, { unit: 1000, algo: ualgo });
      d.update(block);
      const { checksum, units } = d.digest();
      for (const u of units ?? []) lines.push(`OK ${u}`);
      lines.push(`OK ${checksum}`);
    }
  }
  return lines.map((l) => `${l} `).join('');
}

/** The architectures ddt-hash is built for (as `uname -m` names them). */
const ARCHES = ['x86_64', 'aarch64'];

/** The cache name of a build: its architecture and its bytes. */
function cacheName(arch: string, binary: Buffer): string {
  return `ddt-hash-${arch}-${createHash('sha256').update(binary).digest('hex').slice(0, 16)}`;
}

/** What the self-test must print (made to fail with DDT_NATIVE_HASHER=fail-selftest). */
async function expectation(): Promise<string> {
  const expect = selfTestExpectation(await helperScript());
  return process.env.DDT_NATIVE_HASHER === 'fail-selftest' ? `${expect}x` : expect;
}

/**
 * For the helper's install (initChecksums first): the cache names of this ddt's builds and the
 * self-test's answer, so that a kept copy is tested beside the probe. Undefined with
 * DDT_NATIVE_HASHER=off or without builds.
 */
export function hasherOffer(): Promise<{ names: string[]; expect: string } | undefined> {
  if (process.env.DDT_NATIVE_HASHER === 'off') return Promise.resolve(undefined);
  // The builds do not change while ddt runs: read and named once (the prehash asks too), for the
  // self-test's mode as it is now.
  const mode = process.env.DDT_NATIVE_HASHER ?? '';
  let offer = offered.get(mode);
  if (!offer) offered.set(mode, (offer = makeOffer()));
  return offer;
}

const offered = new Map<string, ReturnType<typeof makeOffer>>();

async function makeOffer(): Promise<{ names: string[]; expect: string } | undefined> {
  const builds = ARCHES.map((arch) => ({ arch, url: hasherBuild(arch) })).filter((b) => existsSync(b.url));
  if (builds.length === 0) return undefined;
  const names = await Promise.all(builds.map(async (b) => cacheName(b.arch, await readFile(b.url))));
  return { names, expect: await expectation() };
}

/**
 * Upload and self-test ddt-hash (initChecksums first). Sets the helper's `unitAlgo`.
 * `DDT_NATIVE_HASHER=off` leaves it out (comparisons with the shell tools);
 * `DDT_NATIVE_HASHER=fail-selftest` makes the self-test fail, as a binary that cannot run would.
 */
export async function installHasher(helper: RemoteHelper, probe: RemoteProbe, o: { signal?: AbortSignal; warn(m: string): void; onOpen?: () => void }): Promise<boolean> {
  const mode = process.env.DDT_NATIVE_HASHER ?? 'auto';
  helper.unitAlgo = probe.hashTools.includes('xxhsum') ? 'xxh64' : undefined;
  if (mode === 'off') return false;
  const slower = 'the remote helper hashes with its shell tools (one process per MiB for --skip-identical)';
  const build = hasherBuild(probe.arch ?? '');
  if (!probe.arch || !existsSync(build)) {
    o.warn(`no ddt-hash build for the remote architecture ${probe.arch || '(unknown)'}: ${slower}`);
    return false;
  }
  const binary = await readFile(build);
  // Kept under a name of its bytes: a cached copy is this very build (and passes the self-test
  // again before it is used); another version of ddt finds its own or uploads it.
  const name = cacheName(probe.arch, binary);
  // The install may have tested the kept copy already: passed, it is in place; failed, the test
  // removed it, and only the upload is left.
  const kept = helper.keptHasher?.name === name ? helper.keptHasher : undefined;
  if (kept?.answer === 'hasher=ok') return installed(helper, 'from the cache, with the probe');
  const expect = await expectation();
  const cache = `${helper.hasherCache}/${name}`;
  const install = async (cached: boolean): Promise<{ ok: boolean; why: string }> => {
    const args = ['hasher-install', helper.workDir, expect, cache, ...(cached ? ['use'] : [])];
    const res = await runRemote(helper.control, helper.command(...args), { stdin: cached ? undefined : binary, signal: o.signal, onOpen: o.onOpen });
    const answer = res.stdout.trim().split('\n').pop() ?? '';
    return { ok: res.code === 0 && answer === 'hasher=ok', why: answer || res.stderr.trim().split('\n').pop() || howEnded(res) };
  };
  // A cached copy that fails its self-test is removed by it, and the upload replaces it.
  const cached = !kept && helper.cachedHashers.includes(name) ? await install(true) : undefined;
  const result = cached?.ok ? cached : await install(false);
  if (!result.ok) {
    o.warn(`ddt-hash did not pass its self-test on the remote host (${result.why.slice(0, 160)}): ${slower}`);
    return false;
  }
  return installed(helper, cached?.ok ? 'from the cache' : 'uploaded');
}

function installed(helper: RemoteHelper, how: string): true {
  trace(`ddt-hash ${how}`);
  helper.unitAlgo = 'xxh64';
  return true;
}
