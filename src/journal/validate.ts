/**
 * A journal is input: every field of every record is checked against the same bounds as the
 * command line before anything uses it. A bad field is refused (exit 2) naming the line and the
 * field; nothing spins, connects or writes on a crafted journal.
 */
import { CHECKSUM_ALGOS, isDigest, type ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { BLOCK_STATES, JOURNAL_VERSION, PATH_NAMES, PROVEN_HOW, type BlockRecord, type EndRecord, type JobHeader, type JobOptions, type PathRecord, type RemoteRecord, type RunRecord } from './records.js';

type Obj = Record<string, unknown>;

/** Field checks that name the field and what was wrong. */
class Fields {
  constructor(private readonly where: string) {}

  fail(field: string, want: string, got: unknown): never {
    const shown = typeof got === 'string' ? JSON.stringify(got.slice(0, 60)) : JSON.stringify(got)?.slice(0, 60) ?? String(got);
    throw new DdtError('JOURNAL_INVALID', `${this.where}: ${field} must be ${want}, got ${shown}: the journal is damaged or not ddt's; start a new run`);
  }

  obj(o: Obj, k: string): Obj {
    const v = o[k];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(k, 'an object', v);
    return v as Obj;
  }

  int(o: Obj, k: string, min: number, max: number, field = k): number {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) this.fail(field, `an integer from ${min} to ${max}`, v);
    return v;
  }

  bool(o: Obj, k: string, field = k, dflt?: boolean): boolean {
    const v = o[k];
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'boolean') this.fail(field, 'true or false', v);
    return v;
  }

  str(o: Obj, k: string, field = k, re?: RegExp): string {
    const v = o[k];
    if (typeof v !== 'string' || v.length === 0 || v.length > LIMITS.text || v.includes('\0') || (re && !re.test(v))) this.fail(field, re ? `a string matching ${re}` : 'a string', v);
    return v;
  }

  optStr(o: Obj, k: string, field = k, re?: RegExp): string | undefined {
    return o[k] === undefined ? undefined : this.str(o, k, field, re);
  }

  oneOf<T extends string>(o: Obj, k: string, values: readonly T[], field = k): T {
    const v = o[k];
    if (!values.includes(v as T)) this.fail(field, `one of ${values.join(', ')}`, v);
    return v as T;
  }

  strings(o: Obj, k: string, max: number, field = k): string[] {
    const v = o[k] ?? [];
    if (!Array.isArray(v) || v.length > max) this.fail(field, `a list of at most ${max} strings`, v);
    return v.map((_, i) => this.str(v as unknown as Obj, String(i), `${field}[${i}]`));
  }
}

const ONE_LINE = /^[^\n\r]*$/;
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function remoteOf(f: Fields, o: Obj, field: string): RemoteRecord {
  const r: RemoteRecord = {
    hosts: f.strings(o, 'hosts', LIMITS.hosts, `${field}.hosts`),
    port: f.int(o, 'port', 1, 65535, `${field}.port`),
    user: f.str(o, 'user', `${field}.user`, /^[^\s:/@]+$/),
    identityFiles: f.strings(o, 'identityFiles', LIMITS.identityFiles, `${field}.identityFiles`),
  };
  if (r.hosts.length === 0) f.fail(`${field}.hosts`, 'at least one host', o.hosts);
  const knownHosts = f.optStr(o, 'knownHosts', `${field}.knownHosts`);
  const jump = f.optStr(o, 'jump', `${field}.jump`, ONE_LINE);
  const proxyCommand = f.optStr(o, 'proxyCommand', `${field}.proxyCommand`, ONE_LINE);
  const sshConfig = f.optStr(o, 'sshConfig', `${field}.sshConfig`, ONE_LINE);
  if (knownHosts !== undefined) r.knownHosts = knownHosts;
  if (jump !== undefined) r.jump = jump;
  if (proxyCommand !== undefined) r.proxyCommand = proxyCommand;
  if (sshConfig !== undefined) r.sshConfig = sshConfig;
  if (o.userKnownHosts !== undefined) r.userKnownHosts = f.strings(o, 'userKnownHosts', LIMITS.identityFiles, `${field}.userKnownHosts`);
  if (o.identitiesOnly !== undefined) r.identitiesOnly = f.bool(o, 'identitiesOnly', `${field}.identitiesOnly`);
  for (const k of ['connectTimeoutMs', 'serverAliveIntervalMs'] as const) {
    if (o[k] !== undefined) r[k] = f.int(o, k, 1000, 86_400_000, `${field}.${k}`);
  }
  if (o.sudo !== undefined) r.sudo = f.bool(o, 'sudo', `${field}.sudo`);
  return r;
}

function endOf(f: Fields, o: Obj, field: string): EndRecord {
  const end: EndRecord = { path: f.str(o, 'path', `${field}.path`, ONE_LINE), size: f.int(o, 'size', 1, Number.MAX_SAFE_INTEGER, `${field}.size`) };
  if (o.device !== undefined) {
    const d = f.obj(o, 'device');
    end.device = { kind: f.oneOf(d, 'kind', ['file', 'block'] as const, `${field}.device.kind`), size: f.int(d, 'size', 0, Number.MAX_SAFE_INTEGER, `${field}.device.size`) };
    for (const k of ['ino', 'dev', 'devno', 'serial', 'wwid'] as const) {
      const v = f.optStr(d, k, `${field}.device.${k}`);
      if (v !== undefined) end.device[k] = v;
    }
    if (d.mtimeMs !== undefined) end.device.mtimeMs = f.int(d, 'mtimeMs', 0, Number.MAX_SAFE_INTEGER, `${field}.device.mtimeMs`);
  }
  if (o.remote !== undefined) end.remote = remoteOf(f, f.obj(o, 'remote'), `${field}.remote`);
  if (end.remote && !end.path.startsWith('/')) f.fail(`${field}.path`, 'an absolute path on the remote host', end.path);
  return end;
}

function optionsOf(f: Fields, o: Obj): JobOptions {
  const opts: JobOptions = {
    retries: f.int(o, 'retries', 0, LIMITS.retries, 'options.retries'),
    connections: f.int(o, 'connections', 1, LIMITS.connections, 'options.connections'),
    channels: f.int(o, 'channels', 1, LIMITS.channels, 'options.channels'),
    targetZeroed: f.bool(o, 'targetZeroed', 'options.targetZeroed'),
    skipIdentical: f.bool(o, 'skipIdentical', 'options.skipIdentical'),
    force: f.bool(o, 'force', 'options.force'),
    keepLogs: f.bool(o, 'keepLogs', 'options.keepLogs'),
    reconnectTimeoutMs: f.int(o, 'reconnectTimeoutMs', 0, LIMITS.reconnectTimeoutMs, 'options.reconnectTimeoutMs'),
    noerror: f.bool(o, 'noerror', 'options.noerror'),
    compress: f.oneOf(o, 'compress', ['none', 'gzip', 'auto'] as const, 'options.compress'),
    sparse: f.bool(o, 'sparse', 'options.sparse', true),
  };
  const bw = f.optStr(o, 'bwlimit', 'options.bwlimit', /^[0-9A-Za-z:.,=*\s-]+$/);
  if (bw !== undefined) opts.bwlimit = bw;
  if (f.bool(o, 'fixGpt', 'options.fixGpt', false)) opts.fixGpt = true;
  if (o.discard !== undefined) opts.discard = f.bool(o, 'discard', 'options.discard');
  return opts;
}

function pathOf(f: Fields, o: Obj): PathRecord {
  const name = f.oneOf(o, 'name', PATH_NAMES, 'path.name');
  if (name !== 'sftp' && name !== 'rsync') return { name };
  const p: PathRecord = { name };
  for (const k of ['remoteDir', 'remoteReserve', ...(name === 'rsync' ? ['localDir'] : [])] as const) {
    const v = f.optStr(o, k, `path.${k}`, ONE_LINE);
    if (v !== undefined) (p as Record<string, string>)[k] = v;
  }
  return p;
}

/** A job header as parsed from line `line` of `journal`, checked field by field. */
export function validHeader(rec: Obj, where: string): JobHeader {
  const f = new Fields(where);
  if (rec.version !== JOURNAL_VERSION) f.fail('version', String(JOURNAL_VERSION), rec.version);
  const h: JobHeader = {
    type: 'job',
    version: JOURNAL_VERSION,
    jobId: f.str(rec, 'jobId', 'jobId', JOB_ID),
    command: f.oneOf(rec, 'command', ['copy', 'send', 'pull'] as const),
    options: optionsOf(f, f.obj(rec, 'options')),
    path: pathOf(f, f.obj(rec, 'path')),
    source: endOf(f, f.obj(rec, 'source'), 'source'),
    target: endOf(f, f.obj(rec, 'target'), 'target'),
    blockSize: f.int(rec, 'blockSize', 512, LIMITS.blockSize),
    blocks: f.int(rec, 'blocks', 1, LIMITS.blocks),
    checksum: f.oneOf(rec, 'checksum', CHECKSUM_ALGOS),
    startedAt: f.str(rec, 'startedAt'),
  };
  if (h.blockSize % 512 !== 0) f.fail('blockSize', 'a multiple of 512', h.blockSize);
  const expected = Math.ceil(h.source.size / h.blockSize);
  if (h.blocks !== expected) f.fail('blocks', `${expected} (source.size / blockSize, rounded up)`, h.blocks);
  if (h.target.size < h.source.size) f.fail('target.size', `at least source.size (${h.source.size})`, h.target.size);
  const remoteEnds = Number(h.source.remote !== undefined) + Number(h.target.remote !== undefined);
  const wantRemote = h.command === 'copy' ? 0 : 1;
  if (remoteEnds !== wantRemote || (h.command === 'send' && !h.target.remote) || (h.command === 'pull' && !h.source.remote)) {
    f.fail('source/target', `the ends of a '${h.command}' job`, { source: h.source.remote ? 'remote' : 'local', target: h.target.remote ? 'remote' : 'local' });
  }
  return h;
}

/** A block record for a job of `blocks` blocks with checksum `algo`, or a refusal. */
export function validBlock(rec: Obj, h: { blocks: number; checksum: ChecksumAlgo; source: { size: number } }, where: string): BlockRecord {
  const f = new Fields(where);
  const b: BlockRecord = { type: 'block', block: f.int(rec, 'block', 0, h.blocks - 1), state: f.oneOf(rec, 'state', BLOCK_STATES) };
  for (const k of ['source', 'target'] as const) {
    const v = rec[k];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !isDigest(h.checksum, v)) f.fail(k, `a ${h.checksum} digest`, v);
    b[k] = v as string;
  }
  if (rec.how !== undefined) b.how = f.oneOf(rec, 'how', PROVEN_HOW);
  const reason = f.optStr(rec, 'reason');
  if (reason !== undefined) b.reason = reason;
  for (const k of ['holes', 'offloaded', 'written'] as const) if (rec[k] !== undefined) b[k] = f.int(rec, k, 0, h.source.size);
  if (rec.ranges !== undefined) {
    if (!Array.isArray(rec.ranges) || rec.ranges.length > 1_000_000) f.fail('ranges', 'a list of byte ranges', rec.ranges);
    b.ranges = (rec.ranges as Obj[]).map((r, i) => {
      if (typeof r !== 'object' || r === null) f.fail(`ranges[${i}]`, 'a byte range', r);
      return { offset: f.int(r, 'offset', 0, h.source.size, `ranges[${i}].offset`), length: f.int(r, 'length', 1, h.source.size, `ranges[${i}].length`) };
    });
  }
  return b;
}

export function validRun(rec: Obj, where: string): RunRecord {
  const f = new Fields(where);
  const r: RunRecord = { type: 'run', event: f.oneOf(rec, 'event', ['start', 'end'] as const), time: f.str(rec, 'time') };
  const run = f.optStr(rec, 'run', 'run', JOB_ID);
  if (run !== undefined) r.run = run;
  if (rec.pid !== undefined) r.pid = f.int(rec, 'pid', 1, 2 ** 31);
  if (rec.exitCode !== undefined) r.exitCode = f.int(rec, 'exitCode', 0, 255);
  const error = f.optStr(rec, 'error');
  if (error !== undefined) r.error = error;
  if (rec.bytesOnWire !== undefined) r.bytesOnWire = f.int(rec, 'bytesOnWire', 0, Number.MAX_SAFE_INTEGER);
  return r;
}
