/**
 * The progress event union. Stages emit events; an aggregator folds them into counters;
 * renderers read snapshots of the counters on a ticker, never on the data path.
 */
export type BlockEventState =
  | 'read' // source block read and hashed
  | 'sent' // the target answered for the whole payload (its bytes were counted by `bytes` events)
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
    }
  | {
      /**
       * Bytes of one block on their way, since the previous such event of that block: at most
       * one event per chunk, so a fast link does not flood the listeners.
       */
      type: 'bytes';
      index: number;
      /** payload bytes the data path put on the link (after compression; zero runs cost none) */
      wire: number;
      /**
       * bytes of the block the target has taken (block bytes, not wire bytes): its answer to a
       * part or an SFTP write, the link's flow control for a block streamed whole, the write
       * itself for a local target
       */
      acked: number;
      /** which connection carried them (0-based), when known */
      connection?: number;
    }
  | { type: 'warning'; message: string }
  | { type: 'done'; ok: boolean; exitCode: number; summary?: Record<string, unknown> };

export type ProgressListener = (event: ProgressEvent) => void;
