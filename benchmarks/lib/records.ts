// The records the bench passes between its parts: one run, a method's aggregate over the
// rounds, a target check. Types only: runner, report and the per-kind reports all use them.

import type { Method } from './methods.js';

export interface RunRecord {
  scenario: string;
  method: string;
  round: number;
  ok: boolean;
  error?: string;
  wall: number;
  cpu: number;
  cpuUser: number;
  cpuSys: number;
  remoteCpu: number;
  rssMiB: number;
  connsOpened: number;
  connsPeak: number;
  bytesOnWire: number;
  /** bytes ns A's veth sent during the run (shaped link only): everything on the wire */
  linkBytes?: number;
  /** target equal to the source afterwards (first round only) */
  identical?: boolean;
  /** fresh-target scenarios: bytes the target (file, or the loop device's backing file) has allocated after the run */
  allocated?: number;
  summary?: Record<string, unknown>;
  /** ddt: what its journal header recorded (the data path and options it really used) */
  job?: { via?: string; engine?: string; blockSize?: number; options?: Record<string, unknown> };
  /** links with latency: when bulk data first crossed the link, ddt's first verified block (s after spawn), the delay line's CPU */
  latency?: { firstDataS?: number; firstVerifiedS?: number; runStartS?: number; lineCpuS?: number };
  /** kill-and-resume: the two halves */
  parts?: { killedAtPercent: number; killedWall: number; killedWire: number; killedWritten?: number; resumeWall: number; resumeWire: number };
  argv: string[];
}

export interface LatencyAggregate {
  /** medians over the good runs, seconds; see RunRecord['latency'] */
  firstDataS?: number;
  firstVerifiedS?: number;
  runStartS?: number;
  lineCpuS?: number;
}

export interface Aggregate {
  scenario: string;
  method: string;
  family: Method['family'];
  label: string;
  runs: number;
  okRuns: number;
  walls: number[];
  wall: number;
  mbps: number;
  bytesOnWire: number;
  linkBytes?: number;
  connsOpened: number;
  connsPeak: number;
  rssMiB: number;
  cpu: number;
  remoteCpu: number;
  /** median wall ÷ the baseline's median wall, by baseline family */
  ratio: Partial<Record<'dd-ssh' | 'classic' | 'rsync' | 'tcp' | 'read', number>>;
  /** median of the per-round ratios (each pair ran minutes apart at most) */
  pairedRatio: Partial<Record<'dd-ssh' | 'classic' | 'rsync' | 'tcp' | 'read', number>>;
  errors: string[];
  command: string;
  /** ddt: engine, data path and compression its journal recorded */
  resolved?: string;
  latency?: LatencyAggregate;
}

export interface Target {
  target: string;
  measured: string;
  pass: boolean | null;
}
