/**
 * The progress event union. Stages emit events; an aggregator folds them into counters;
 * renderers read snapshots of the counters on a ticker, never on the data path.
 */
export type BlockEventState =
  | 'read' // source block read and hashed
  | 'sent' // payload handed to the target (bytes on the wire counted here)
  | 'verified' // target read-back checksum equals source checksum
  | 'zero' // verified block that was all zeros at the source (also counted as verified)
  | 'identical' // verified without sending: target already had it (also counted as verified)
  | 'retry' // mismatch or transport error, block re-queued
  | 'failed'; // gave up on this block for this run

export type ProgressEvent =
  | {
      type: 'start';
      command: string;
      blocks: number;
      blockSize: number;
      bytesTotal: number;
      /** blocks/bytes already verified by an earlier run (resume) */
      blocksDone: number;
      bytesDone: number;
      engine: string;
      source: string;
      target: string;
    }
  | {
      type: 'block';
      index: number;
      state: BlockEventState;
      /** block length in bytes */
      bytes: number;
      /** payload bytes sent over the wire for this event (state 'sent') */
      wireBytes?: number;
      /** which connection carried it (0-based), when known */
      connection?: number;
    }
  | { type: 'warning'; message: string }
  | { type: 'done'; ok: boolean; exitCode: number; summary?: Record<string, unknown> };

export type ProgressListener = (event: ProgressEvent) => void;
