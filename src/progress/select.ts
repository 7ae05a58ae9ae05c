import type { ProgressAggregator } from './aggregator.js';
import { JsonRenderer } from './json.js';
import { PlainRenderer } from './plain.js';
import { NoopRenderer, type ProgressRenderer, type RendererOptions } from './renderer.js';
import { TtyRenderer } from './tty.js';

export type ProgressMode = 'auto' | 'tty' | 'plain' | 'json' | 'none';
export const PROGRESS_MODES: readonly ProgressMode[] = ['auto', 'tty', 'plain', 'json', 'none'];

/**
 * The renderer for `--progress MODE`. `auto`: bars on a terminal, periodic lines otherwise
 * (a redrawn bar in a log file is unreadable). `isTTY` is passed in because only cli/ looks at
 * the process's streams.
 */
export function createRenderer(
  mode: ProgressMode,
  aggregator: ProgressAggregator,
  stream: NodeJS.WritableStream,
  isTTY: boolean,
  opts: RendererOptions = {},
): ProgressRenderer {
  switch (mode) {
    case 'none':
      return new NoopRenderer();
    case 'json':
      return new JsonRenderer(aggregator, stream, opts);
    case 'plain':
      return new PlainRenderer(aggregator, stream, opts);
    case 'tty':
      return new TtyRenderer(aggregator, stream, opts);
    case 'auto':
      return isTTY ? new TtyRenderer(aggregator, stream, opts) : new PlainRenderer(aggregator, stream, opts);
  }
}
