import type { CallscribeError } from '../errors.js';

/**
 * The one small interface every speech engine implements. Audio is always 16 kHz mono s16.
 * Segment ids grow from 1 per stream; a segment is emitted as partial (`final: false`) while its text
 * grows and once more as final.
 */
export interface SegmentUpdate {
  id: number;
  text: string;
  startMs: number;
  endMs: number;
  final: boolean;
}

export interface EngineStreamHandlers {
  segment(update: SegmentUpdate): void;
  /** A failure of the stream (the engine stays usable for others). */
  error(err: CallscribeError): void;
  /**
   * Optional progress: every sample before `endMs` has been read and decoded, nothing of it waits in the
   * engine. Reported about once a second of audio, also through silence, where no segment comes: a client
   * sending a whole file is paced by it (the Harf socket), so silence goes at decode speed, not real time.
   */
  heard?(endMs: number): void;
}

export interface EngineStream {
  /** Feeds 16 kHz mono samples. The engine may take ownership of `pcm` (callers pass a fresh copy). */
  feed(pcm: Int16Array): void;
  /**
   * Optional: feeds 16 kHz mono samples as s16le bytes at any alignment (a view into a bus message), valid
   * during the call only: the engine copies what it keeps. A worker uses it instead of `feed` so that the
   * samples are copied once, by the engine, where they go (PocketSphinx: its thread's next message).
   */
  feedBytes?(s16le: Uint8Array): void;
  /** Flushes the last words; resolves once every final segment has been emitted. */
  finish(): Promise<void>;
  /** Ends the stream without flushing; idempotent. */
  close(): Promise<void>;
}

export interface Engine {
  readonly name: string;
  /** Concurrent streams this engine serves on this worker. */
  readonly slots: number;
  open(opts: { session: string; language: string }, handlers: EngineStreamHandlers): Promise<EngineStream>;
  close(): Promise<void>;
}
