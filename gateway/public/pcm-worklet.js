// @ts-nocheck  (AudioWorkletGlobalScope: sampleRate, AudioWorkletProcessor and registerProcessor are globals)
/**
 * The microphone as Float32 mono frames for the page's linear16 path. The audio thread only mixes down
 * and copies into a preallocated block; every 100 ms of audio the block is posted (transferred, not
 * copied) to the page, which converts it to s16le and sends it. `{"flush":true}` on the port posts
 * what is left, then `{"flushed":true}`.
 */
const BLOCK_FRAMES = Math.round(sampleRate / 10); // 100 ms: 9.6 KB of s16le at 48 kHz, far below the socket's 64 KiB

class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK_FRAMES);
    this.filled = 0;
    this.stopped = false;
    this.port.onmessage = (e) => {
      if (!e.data || !e.data.flush) return;
      this.post();
      this.stopped = true;
      this.port.postMessage({ flushed: true });
    };
  }

  post() {
    if (this.filled === 0) return;
    const out = this.filled === BLOCK_FRAMES ? this.block : this.block.slice(0, this.filled);
    this.port.postMessage(out, [out.buffer]);
    this.block = new Float32Array(BLOCK_FRAMES);
    this.filled = 0;
  }

  process(inputs) {
    if (this.stopped) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true; // not connected yet
    const n = input[0].length;
    const gain = 1 / input.length;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < input.length; c++) s += input[c][i];
      this.block[this.filled++] = s * gain;
      if (this.filled === BLOCK_FRAMES) this.post();
    }
    return true;
  }
}

registerProcessor('pcm-capture', PcmCapture);
