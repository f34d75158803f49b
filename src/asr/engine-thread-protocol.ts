/** Messages between the PocketSphinx engine (main thread) and its engine threads. */
export type ToThread =
  | { t: 'open'; sid: number }
  /**
   * The audio of one or more streams in one message (the frames of a bus batch for this thread): stream
   * sids[i] gets the samples from byte ends[i-1] (0 for the first) to ends[i] of `buf`, in order.
   */
  | { t: 'feed'; sid: 0; sids: number[]; ends: number[]; buf: ArrayBuffer }
  | { t: 'finish'; sid: number }
  | { t: 'close'; sid: number }
  | { t: 'bench'; sid: number; file: string };

export type FromThread =
  | { t: 'ready'; sid: 0 }
  | { t: 'opened'; sid: number }
  | { t: 'seg'; sid: number; id: number; text: string; startMs: number; endMs: number; final: boolean }
  | { t: 'finished'; sid: number }
  /** Every sample fed before `ms` has been decoded (about once a second of audio). */
  | { t: 'heard'; sid: number; ms: number }
  | { t: 'error'; sid: number; code: string; message: string }
  | { t: 'bench'; sid: number; rtf: number };
