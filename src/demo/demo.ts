/**
 * `ddt demo`: everything a real `ddt send` needs, made up on this machine and removed again: a
 * generated mixed image, a target (a loop device on a fresh file as root, else an image file),
 * a private sshd on 127.0.0.1 with throwaway keys. Nothing outside its temp dir is touched, so
 * no confirmation is needed; `cleanup()` (or `cleanupNow()` at process exit) undoes it all.
 */
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, statfs, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NewJob } from '../engine/job-setup.js';
import type { VerifyRequest } from '../engine/verify.js';
import { formatBytes } from '../format.js';
import { writeImage } from './image.js';
import { attachLoopDevice, loopAvailable, type LoopDevice } from './loop-device.js';
import { sshdMissing, startPrivateSshd, type PrivateSshd } from './private-sshd.js';
import { DdtError } from '../errors.js';

export interface DemoOptions {
  /** bytes of the generated image (and the target) */
  size: number;
  blockSize: number;
  /** `--block-size` as typed, for the command line shown */
  blockSizeText: string;
  connections: number;
  channels: number;
  /** parent of the demo's temp dir [os.tmpdir()] */
  parentDir?: string;
  signal: AbortSignal;
  /** narrative lines for the user */
  say(line: string): void;
}

/** Source and target together, plus a little for the journal, keys and logs. */
function spaceNeeded(size: number): number {
  return 2 * size + (64 << 20);
}

export class DemoEnvironment {
  private readonly exitCleanups = new Map<number, () => void>();
  private nextCleanup = 0;
  private sshd?: PrivateSshd;
  private loop?: LoopDevice;
  private cleaning?: Promise<string[]>;
  source = '';
  target = '';

  private constructor(
    readonly dir: string,
    private readonly opts: DemoOptions,
  ) {}

  /** Refusals before anything is created: exit 2 with what to do. */
  static async check(opts: DemoOptions): Promise<void> {
    const missing = sshdMissing();
    if (missing) throw new DdtError('TOOL_MISSING', `ddt demo runs a private sshd on 127.0.0.1, but ${missing}`);
    if (opts.size < 1 << 20 || opts.size % 512 !== 0) throw new DdtError('BAD_SIZE', `--size must be at least 1M and a multiple of 512 bytes, got ${opts.size}`);
    const parent = opts.parentDir ?? tmpdir();
    const fs = await statfs(parent);
    const free = fs.bavail * fs.bsize;
    if (free < spaceNeeded(opts.size)) {
      throw new DdtError(
      'STAGING_SPACE',
        `${parent} has ${formatBytes(free)} free, the demo needs about ${formatBytes(spaceNeeded(opts.size))}: pass a smaller --size (e.g. --size 256M) or set TMPDIR to a bigger filesystem`,
      );
    }
  }

  /** Create everything. On failure (or Ctrl-C) whatever was created is removed before this rejects. */
  static async create(opts: DemoOptions): Promise<DemoEnvironment> {
    await DemoEnvironment.check(opts);
    const env = new DemoEnvironment(await mkdtemp(join(opts.parentDir ?? tmpdir(), 'ddt-demo-')), opts);
    // Last resort at exit (a second Ctrl-C): synchronous, newest first.
    env.registerCleanup(() => rmSync(env.dir, { recursive: true, force: true }));
    try {
      await env.setUp();
      return env;
    } catch (err) {
      await env.cleanup();
      throw err;
    }
  }

  private async setUp(): Promise<void> {
    const { size, signal, say } = this.opts;
    this.source = join(this.dir, 'source.img');
    const t0 = Date.now();
    await writeImage(this.source, size, 'mixed', 1, { signal });
    say(`generated ${this.source}: ${formatBytes(size)} mixed image (about 40% random, 40% zeros, 20% text) in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    signal.throwIfAborted();
    const backing = join(this.dir, 'target.img');
    await writeFile(backing, '');
    await truncate(backing, size);
    if (loopAvailable()) {
      this.loop = await attachLoopDevice(backing, (fn) => this.registerCleanup(fn));
      this.target = this.loop.dev;
      say(`target: loop device ${this.target} on a fresh ${formatBytes(size)} file (${backing})`);
    } else {
      this.target = backing;
      say(`target: image file ${backing} (${formatBytes(size)}; not root, so no loop device)`);
    }
    signal.throwIfAborted();
    const sshdParent = join(this.dir, 'sshd');
    await mkdir(sshdParent);
    this.sshd = await startPrivateSshd(
      {},
      {
        registerCleanup: (fn) => this.registerCleanup(fn),
        makeTempDir: (prefix) => mkdtemp(join(sshdParent, prefix)),
        removeTempDir: (d) => rm(d, { recursive: true, force: true }),
      },
    );
    // An empty ssh config: the user's ~/.ssh/config must not redirect 127.0.0.1.
    await writeFile(join(this.dir, 'ssh_config'), '');
    say(`private sshd (pid ${this.sshd.pid}) on 127.0.0.1:${this.sshd.port}, throwaway keys in ${this.sshd.dir}`);
  }

  get remoteTarget(): string {
    return `${this.sshd!.user}@127.0.0.1:${this.target}`;
  }

  get journal(): string {
    return join(this.dir, 'demo.journal');
  }

  private ssh() {
    const s = this.sshd!;
    return { port: s.port, user: s.user, identity: [s.clientKeyPath], knownHosts: s.knownHostsPath, sshConfig: join(this.dir, 'ssh_config') };
  }

  /** The `ddt send` command line the demo runs in-process, for the user to recognise. */
  commandLine(): string {
    const s = this.ssh();
    return `ddt send ${this.source} ${this.remoteTarget} -p ${s.port} -i ${s.identity[0]} --known-hosts ${s.knownHosts} -b ${this.opts.blockSizeText} --yes`;
  }

  sendRequest(): NewJob {
    return {
      kind: 'new',
      command: 'send',
      source: this.source,
      target: this.remoteTarget,
      blockSize: this.opts.blockSize,
      checksum: 'auto',
      options: {
        retries: 3,
        connections: this.opts.connections,
        channels: this.opts.channels,
        targetZeroed: false,
        skipIdentical: false,
        force: false,
        keepLogs: false,
        reconnectTimeoutMs: 60_000,
        noerror: false,
        compress: 'auto',
        sparse: true,
      },
      ssh: { ...this.ssh(), acceptNewHostKey: false },
      journal: this.journal,
      yes: true, // it touches only what it created
      dryRun: false,
    };
  }

  verifyRequest(): VerifyRequest {
    return {
      source: this.source,
      target: this.remoteTarget,
      blockSize: this.opts.blockSize,
      checksum: 'auto',
      connections: this.opts.connections,
      channels: this.opts.channels,
      ssh: { ...this.ssh(), acceptNewHostKey: false },
      reconnectTimeoutMs: 60_000,
    };
  }

  /** Why the private sshd turned the login away, from its log (e.g. a locked account as non-root). */
  sshdRefusal(): string | undefined {
    if (!this.sshd) return undefined;
    let log = '';
    try {
      log = readFileSync(this.sshd.logPath, 'utf8');
    } catch {
      return undefined;
    }
    return /User \S+ not allowed because [^\n]*/.exec(log)?.[0];
  }

  /** Stop sshd (by PID), detach the loop device, remove the temp dir. Idempotent; says what it did. */
  cleanup(): Promise<string[]> {
    this.cleaning ??= (async () => {
      const done: string[] = [];
      if (this.sshd) {
        await this.sshd.stop().catch(() => {});
        done.push(`sshd (pid ${this.sshd.pid}) stopped`);
      }
      if (this.loop) {
        await this.loop.detach().catch(() => {});
        done.push(`${this.loop.dev} detached`);
      }
      await rm(this.dir, { recursive: true, force: true });
      done.push(`${this.dir} removed`);
      this.cleanupNow(); // anything a failed step above left
      return done;
    })();
    return this.cleaning;
  }

  /** Synchronous cleanup for process exit: kill sshd, detach the loop device, remove the dir. */
  cleanupNow(): void {
    const fns = [...this.exitCleanups.values()].reverse();
    this.exitCleanups.clear();
    for (const fn of fns) {
      try {
        fn();
      } catch {
        // at exit there is nobody left to tell
      }
    }
  }

  private registerCleanup(fn: () => void): () => void {
    const id = this.nextCleanup++;
    this.exitCleanups.set(id, fn);
    return () => {
      this.exitCleanups.delete(id);
    };
  }
}
