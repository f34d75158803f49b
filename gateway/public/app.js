// @ts-check
/**
 * callscribe live captions: the microphone to `/v1/listen`, or a live call's events from
 * `/v1/calls/{id}/events`, shown as segments that grow in place. Plain ES module, no build step.
 *
 * Page URL parameters: `token` (else typed in the form), `mode=pcm` (AudioWorklet + linear16 even where
 * MediaRecorder does WebM/Opus), `watch=<call id>` (watch that call at load), `language`, `call_id`.
 */

/**
 * @typedef {{ type: 'segment', segment_id: number, channel: number, speaker?: string, text: string,
 *   start: string, end: string, start_ms: number, end_ms: number, final: boolean }} SegmentEvent
 * @typedef {{ type: 'error', code: string, message: string }} GatewayError
 * @typedef {SegmentEvent | GatewayError | { type: 'closed' }} ServerEvent
 * @typedef {'idle' | 'connecting' | 'live' | 'stopping' | 'watching' | 'closed' | 'error'} State
 */

const WEBM_OPUS = 'audio/webm;codecs=opus';
const TIMESLICE_MS = 100;
/** The gateway waits up to CALLSCRIBE_FINALIZE_TIMEOUT_MS (30 s) for the last words; a little more here. */
const STOP_TIMEOUT_MS = 40_000;
/** Past this much audio waiting in the socket, the network is not keeping up: say so. */
const SLOW_BYTES = 1 << 20;

/** RFC 6455 §7.4.1 close codes, as the gateway uses them (README: Errors). */
const CLOSE_REASONS = /** @type {Record<number, string>} */ ({
  1000: 'normal close',
  1001: 'the gateway is shutting down',
  1003: 'audio the gateway cannot decode',
  1006: 'connection lost',
  1008: 'a message the gateway does not accept',
  1009: 'a message too large',
  1011: 'a server error',
  1013: 'too slow to keep up, try again',
});

const params = new URLSearchParams(location.search);

/** @template {HTMLElement} T @param {string} id @returns {T} */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return /** @type {T} */ (el);
}

const ui = {
  tokenRow: byId('token-row'),
  token: /** @type {HTMLInputElement} */ (byId('token')),
  start: /** @type {HTMLButtonElement} */ (byId('start')),
  stop: /** @type {HTMLButtonElement} */ (byId('stop')),
  mode: byId('mode'),
  watchForm: /** @type {HTMLFormElement} */ (byId('watch-form')),
  callId: /** @type {HTMLInputElement} */ (byId('call-id')),
  watch: /** @type {HTMLButtonElement} */ (byId('watch')),
  status: byId('status'),
  source: byId('source'),
  captions: byId('captions'),
};

/** @param {State} state @param {string} text */
function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function token() {
  return params.get('token') || ui.token.value.trim();
}

/** A ws:// or wss:// URL on this page's origin, the token as `?token=` (browsers cannot set headers on a WebSocket). */
function socketUrl(/** @type {string} */ path, /** @type {Record<string, string>} */ query) {
  const q = new URLSearchParams({ ...query, token: token() });
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}?${q}`;
}

/**
 * Browsers hide the HTTP answer of a refused WebSocket upgrade (the socket only reports 1006), so ask the
 * gateway over plain HTTP what it would answer: a bad token, an unknown call, no worker.
 * @param {string | null} callId the watched call, or null for the microphone
 */
async function explainRefusal(callId) {
  const t = encodeURIComponent(token());
  try {
    const r = await fetch(callId === null ? `/v1/calls?status=live&token=${t}` : `/v1/calls/${encodeURIComponent(callId)}?token=${t}`);
    if (r.status === 401) return 'CS_ERR_UNAUTHORIZED: the token was refused (HTTP 401)';
    if (r.status === 404 && callId !== null) return `CS_ERR_CALL_NOT_FOUND: no call "${callId}" (HTTP 404)`;
    const ready = await fetch('/readyz');
    if (ready.status !== 200) return `the gateway is not ready: no ASR worker (HTTP ${ready.status})`;
  } catch {
    return 'the gateway cannot be reached';
  }
  return 'the gateway refused the connection (no free ASR worker, at capacity, or a bad parameter)';
}

/** Segments keyed by id, replaced in place as their text grows. */
class CaptionView {
  /** @param {HTMLElement} root @param {HTMLElement} title */
  constructor(root, title) {
    this.root = root;
    this.title = title;
    /** @type {Map<number, HTMLElement>} */
    this.segments = new Map();
    /** @type {Set<number>} */
    this.channels = new Set();
    this.partialUpdates = 0;
    this.finals = 0;
  }

  /** @param {string} title */
  reset(title) {
    this.root.replaceChildren();
    this.segments.clear();
    this.channels.clear();
    this.partialUpdates = 0;
    this.finals = 0;
    this.root.classList.remove('multi');
    this.root.dataset.partialUpdates = '0';
    this.root.dataset.finals = '0';
    this.title.textContent = title;
  }

  /** @param {SegmentEvent} seg */
  update(seg) {
    let el = this.segments.get(seg.segment_id);
    if (!el) {
      el = this.create(seg);
    } else if (el.classList.contains('final') && !seg.final) {
      return; // a late partial never undoes a final
    }
    const who = /** @type {HTMLElement} */ (el.querySelector('.who'));
    if (seg.speaker) {
      who.className = 'who';
      who.textContent = seg.speaker;
    } else {
      who.className = 'who channel';
      who.textContent = `channel ${seg.channel}`;
    }
    /** @type {HTMLElement} */ (el.querySelector('.time')).textContent = seg.start;
    /** @type {HTMLElement} */ (el.querySelector('.text')).textContent = seg.text;
    if (seg.final && !el.classList.contains('final')) this.finals++;
    if (!seg.final) this.partialUpdates++;
    el.className = `segment ${seg.final ? 'final' : 'partial'}${seg.text ? '' : ' empty'}`;
    // Screen readers hear a segment once, when it is final, not at every growing partial.
    if (seg.final) el.removeAttribute('aria-hidden');
    else el.setAttribute('aria-hidden', 'true');
    if (!this.channels.has(seg.channel)) {
      this.channels.add(seg.channel);
      if (this.channels.size > 1) this.root.classList.add('multi');
    }
    this.root.dataset.partialUpdates = String(this.partialUpdates);
    this.root.dataset.finals = String(this.finals);
  }

  /** A new element, in time order among the others (channels interleave). @param {SegmentEvent} seg */
  create(seg) {
    const el = document.createElement('p');
    el.dataset.segmentId = String(seg.segment_id);
    el.dataset.channel = String(seg.channel);
    el.dataset.startMs = String(seg.start_ms);
    for (const cls of ['who', 'time', 'text']) {
      const span = document.createElement('span');
      span.className = cls;
      el.append(span);
    }
    const stick = this.root.scrollTop + this.root.clientHeight >= this.root.scrollHeight - 8;
    let after = null;
    for (const other of this.segments.values()) {
      const start = Number(other.dataset.startMs);
      if (start > seg.start_ms || (start === seg.start_ms && Number(other.dataset.segmentId) > seg.segment_id)) {
        if (!after || Number(after.dataset.startMs) > start) after = other;
      }
    }
    this.root.insertBefore(el, after);
    this.segments.set(seg.segment_id, el);
    if (stick) this.root.scrollTop = this.root.scrollHeight;
    return el;
  }
}

const view = new CaptionView(ui.captions, ui.source);

/**
 * One socket of server events (the microphone's or a watched call's): segments to the view, errors and
 * close codes to #status, never silently.
 */
class EventSocket {
  /**
   * @param {string} url
   * @param {string | null} callId for the refusal explanation: the watched call, null for the microphone
   * @param {(ws: WebSocket) => void} onOpen
   */
  constructor(url, callId, onOpen) {
    this.callId = callId;
    this.opened = false;
    this.sawClosed = false;
    /** @type {GatewayError | null} */
    this.error = null;
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    /** @type {Promise<number>} resolves with the close code */
    this.closed = new Promise((resolve) => {
      this.ws.addEventListener('close', (e) => resolve(e.code));
    });
    this.ws.addEventListener('open', () => {
      this.opened = true;
      onOpen(this.ws);
    });
    this.ws.addEventListener('message', (e) => this.onMessage(e.data));
  }

  /** @param {unknown} data */
  onMessage(data) {
    if (typeof data !== 'string') return;
    /** @type {ServerEvent} */
    let ev;
    try {
      ev = JSON.parse(data);
    } catch {
      return setStatus('error', 'the gateway sent something that is not JSON');
    }
    switch (ev.type) {
      case 'segment':
        return view.update(ev);
      case 'error':
        this.error = ev;
        return setStatus('error', `Error ${ev.code}: ${ev.message}`);
      case 'closed':
        this.sawClosed = true;
        return;
    }
  }

  /**
   * What the close means, for #status: `null` for the normal end (`closed`, then 1000).
   * @param {number} code
   * @returns {Promise<string | null>}
   */
  async describeClose(code) {
    if (!this.opened) return explainRefusal(this.callId);
    if (code === 1000 && this.sawClosed) return null;
    const what = CLOSE_REASONS[code] ?? 'an unexpected close';
    return this.error
      ? `Error ${this.error.code}: ${this.error.message} (closed ${code})`
      : `The connection closed with ${code}: ${what}`;
  }

  /** @param {string} text */
  send(text) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  close() {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
  }
}

/** The microphone, as WebM/Opus (MediaRecorder) or s16le (AudioWorklet), to `/v1/listen`. */
class MicSession {
  /** @param {boolean} pcm */
  constructor(pcm) {
    this.pcm = pcm;
    /** @type {MediaStream | null} */
    this.stream = null;
    /** @type {MediaRecorder | null} */
    this.recorder = null;
    /** @type {AudioContext | null} */
    this.audio = null;
    /** @type {AudioWorkletNode | null} */
    this.worklet = null;
    /** @type {EventSocket | null} */
    this.socket = null;
    this.stopping = false;
    this.slow = false;
    /** One scratch buffer for the s16le conversion: WebSocket.send copies what it is given. */
    this.scratch = new Int16Array(0);
  }

  async start() {
    // Echo cancellation stays (the agent's speaker must not be captioned twice); the browser's noise
    // suppression and gain control are off: they reshape speech in ways that cost the recognizer words
    // (Whisper hears through noise on its own), and the gain rides up on silence.
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false } });
    /** @type {Record<string, string>} */
    const query = { call_id: params.get('call_id') || `browser-${crypto.randomUUID().slice(0, 8)}` };
    const language = params.get('language');
    if (language) query.language = language;
    if (this.pcm) {
      this.audio = new AudioContext();
      await this.audio.audioWorklet.addModule('/static/pcm-worklet.js');
      await this.audio.resume();
      Object.assign(query, { encoding: 'linear16', sample_rate: String(this.audio.sampleRate), channels: '1' });
    } else {
      query.encoding = 'webm-opus';
    }
    ui.mode.textContent = this.pcm ? `linear16 at ${query.sample_rate} Hz (AudioWorklet)` : 'WebM/Opus (MediaRecorder)';
    setStatus('connecting', 'Connecting…');
    const socket = new EventSocket(socketUrl('/v1/listen', query), null, () => {
      this.capture(socket.ws);
      setStatus('live', `Live: call ${query.call_id}`);
    });
    this.socket = socket;
    const code = await socket.closed;
    this.release();
    const problem = await socket.describeClose(code);
    if (problem) setStatus('error', problem);
    else setStatus('closed', `Closed: call ${query.call_id} finished.`);
  }

  /** Starts sending audio once the socket is open (the gateway claimed a worker at the upgrade). @param {WebSocket} ws */
  capture(ws) {
    const stream = /** @type {MediaStream} */ (this.stream);
    if (!this.pcm) {
      this.recorder = new MediaRecorder(stream, { mimeType: WEBM_OPUS });
      // Blobs go as they are: WebSocket.send keeps their order, the first one carries the WebM header.
      this.recorder.addEventListener('dataavailable', (e) => {
        if (e.data.size > 0 && ws.readyState === WebSocket.OPEN) this.sendAudio(ws, e.data);
      });
      this.recorder.start(TIMESLICE_MS);
      return;
    }
    const audio = /** @type {AudioContext} */ (this.audio);
    this.worklet = new AudioWorkletNode(audio, 'pcm-capture', { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: 'explicit' });
    this.worklet.port.onmessage = (e) => {
      if (e.data instanceof Float32Array && ws.readyState === WebSocket.OPEN) this.sendAudio(ws, this.toS16(e.data));
    };
    // Rendered only when pulled by the destination: connected through a muted gain, so nothing is heard.
    const mute = new GainNode(audio, { gain: 0 });
    audio.createMediaStreamSource(stream).connect(this.worklet).connect(mute).connect(audio.destination);
  }

  /** Float32 [-1, 1] to s16le (the platform is little-endian in every browser that runs this). @param {Float32Array} f */
  toS16(f) {
    if (this.scratch.length < f.length) this.scratch = new Int16Array(f.length);
    const out = this.scratch.subarray(0, f.length);
    for (let i = 0; i < f.length; i++) {
      const s = f[i] < -1 ? -1 : f[i] > 1 ? 1 : f[i];
      out[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
    }
    return out;
  }

  /** @param {WebSocket} ws @param {Blob | Int16Array} data */
  sendAudio(ws, data) {
    ws.send(data);
    if (ws.bufferedAmount > SLOW_BYTES && !this.slow) {
      this.slow = true;
      setStatus('live', `Live, but the network is slow: ${Math.round(ws.bufferedAmount / 1024)} KiB waiting to be sent`);
    }
  }

  /** Stop recording, send what is left, `{"type":"finalize"}`, and wait for the gateway's `closed`. */
  async stop() {
    if (this.stopping || !this.socket) return;
    this.stopping = true;
    const socket = this.socket;
    if (!socket.opened) return socket.close(); // nothing was sent: no words to wait for
    setStatus('stopping', 'Finishing the last words…');
    if (this.recorder && this.recorder.state !== 'inactive') {
      const stopped = new Promise((resolve) => this.recorder?.addEventListener('stop', resolve, { once: true }));
      this.recorder.stop(); // the last blob arrives (and is sent) before `stop`
      await stopped;
    }
    if (this.worklet) {
      const worklet = this.worklet;
      const flushed = new Promise((resolve) => worklet.port.addEventListener('message', (e) => { if (e.data?.flushed) resolve(null); }));
      worklet.port.postMessage({ flush: true });
      await Promise.race([flushed, new Promise((r) => setTimeout(r, 500))]);
    }
    this.stream?.getTracks().forEach((t) => t.stop());
    socket.send(JSON.stringify({ type: 'finalize' }));
    const timer = setTimeout(() => {
      setStatus('error', 'No answer to finalize in time; closing.');
      socket.close();
    }, STOP_TIMEOUT_MS);
    await socket.closed;
    clearTimeout(timer);
  }

  /** Every exit path: the microphone, the recorder and the audio graph are let go. Idempotent. */
  release() {
    if (this.recorder && this.recorder.state !== 'inactive') this.recorder.stop();
    this.stream?.getTracks().forEach((t) => t.stop());
    this.worklet?.disconnect();
    if (this.audio && this.audio.state !== 'closed') void this.audio.close();
    this.recorder = null;
    this.worklet = null;
    this.audio = null;
  }
}

/** A live call's events from `/v1/calls/{id}/events`, read-only: a supervisor's wall. */
class WatchSession {
  /** @param {string} callId */
  constructor(callId) {
    this.callId = callId;
    /** @type {EventSocket | null} */
    this.socket = null;
    this.stopped = false;
  }

  async start() {
    setStatus('connecting', `Connecting to call ${this.callId}…`);
    const socket = new EventSocket(socketUrl(`/v1/calls/${encodeURIComponent(this.callId)}/events`, {}), this.callId,
      () => setStatus('watching', `Watching call ${this.callId}`));
    this.socket = socket;
    const code = await socket.closed;
    if (this.stopped) return; // left for another call or the microphone: their status stands
    const problem = await socket.describeClose(code);
    if (problem) setStatus('error', problem);
    else setStatus('closed', `Closed: call ${this.callId} ended.`);
  }

  stop() {
    this.stopped = true;
    this.socket?.close();
  }
}

/** @type {MicSession | null} */
let mic = null;
/** @type {WatchSession | null} */
let watching = null;

function needToken() {
  if (token()) return false;
  ui.tokenRow.hidden = false;
  ui.token.focus();
  setStatus('error', 'Enter the gateway token first.');
  return true;
}

function choosePcm() {
  if (params.get('mode') === 'pcm') return true;
  return typeof MediaRecorder === 'undefined' || !MediaRecorder.isTypeSupported(WEBM_OPUS);
}

async function startMic() {
  if (mic || needToken()) return;
  watching?.stop();
  watching = null;
  ui.start.disabled = true;
  ui.watch.disabled = true;
  ui.stop.disabled = false;
  view.reset('Your microphone');
  const session = new MicSession(choosePcm());
  mic = session;
  try {
    await session.start();
  } catch (err) {
    session.release();
    session.socket?.close();
    const e = /** @type {Error} */ (err);
    setStatus('error', e.name === 'NotAllowedError' ? 'Microphone permission was denied.' : `Could not start: ${e.name}: ${e.message}`);
  } finally {
    mic = null;
    ui.start.disabled = false;
    ui.watch.disabled = false;
    ui.stop.disabled = true;
  }
}

async function stopMic() {
  if (!mic) return;
  ui.stop.disabled = true;
  await mic.stop();
}

/** @param {string} callId */
async function watchCall(callId) {
  if (mic || needToken()) return;
  watching?.stop();
  view.reset(`Call ${callId}`);
  const session = new WatchSession(callId);
  watching = session;
  await session.start();
  if (watching === session) watching = null;
}

ui.tokenRow.hidden = Boolean(params.get('token'));
ui.mode.textContent = choosePcm() ? 'linear16 (AudioWorklet)' : 'WebM/Opus (MediaRecorder)';
ui.start.addEventListener('click', () => void startMic());
ui.stop.addEventListener('click', () => void stopMic());
ui.watchForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const id = ui.callId.value.trim();
  if (id) void watchCall(id);
  else setStatus('error', 'Enter a call id to watch.');
});
view.reset('Captions');
const atLoad = params.get('watch');
if (atLoad) {
  ui.callId.value = atLoad;
  void watchCall(atLoad);
}
