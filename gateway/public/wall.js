// @ts-check
/**
 * callscribe supervisor wall: every live call of the deployment from `/v1/wall`, one card per call with its
 * latest words per channel, tone, talk ratio, overtalk and interruptions, and alerts. Plain ES module, no
 * build step; every text from a call goes in with textContent, never as HTML.
 *
 * Page URL parameters: `token` (else typed in the form).
 */

/**
 * @typedef {'positive' | 'neutral' | 'negative'} Tone
 * @typedef {'info' | 'warning' | 'critical'} Severity
 * @typedef {{ channel: number, label: string | null, text: string, partial: string, tone: Tone | null, speaking: boolean,
 *   talk_ratio: number | null, talk_ms: number | null, words: number | null, wpm: number | null,
 *   interruptions: number | null, interrupted: number | null }} WallChannel
 * @typedef {{ rule: string, severity: Severity, kind: string, channel: number | null, segment_id: number | null,
 *   at_ms: number | null, match?: string }} WallAlert
 * @typedef {{ call_id: string, source: string | null, language: string | null, started_at: string | null,
 *   status: 'live' | 'ended', channels: WallChannel[],
 *   metrics: { duration_ms: number | null, non_talk_ms: number | null, overtalk_ms: number | null, interruptions: number | null } | null,
 *   alerts: WallAlert[], alerts_total: number, severity: Severity | null, error: { code: string, message: string } | null }} WallCall
 * @typedef {{ type: 'snapshot', calls: WallCall[], part: number, parts: number }
 *   | { type: 'call', call: WallCall } | { type: 'ended', call_id: string }} WallEvent
 * @typedef {'idle' | 'connecting' | 'live' | 'reconnecting' | 'error'} State
 */

/** An ended call's card stays this long, greyed, before it leaves the wall. */
const ENDED_LINGER_MS = 6_000;
/** Reconnect backoff: doubling from the first, up to the last, with ±25% jitter (many walls, one gateway restart). */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;

/** RFC 6455 §7.4.1 close codes, as the gateway uses them (README: Errors). */
const CLOSE_REASONS = /** @type {Record<number, string>} */ ({
  1001: 'the gateway is shutting down',
  1006: 'connection lost',
  1011: 'a server error',
  1013: 'too slow to keep up',
});

const params = new URLSearchParams(location.search);

/** @template {HTMLElement} T @param {string} id @returns {T} */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return /** @type {T} */ (el);
}

const ui = {
  tokenRow: /** @type {HTMLFormElement} */ (byId('token-row')),
  token: /** @type {HTMLInputElement} */ (byId('token')),
  status: byId('status'),
  count: byId('count'),
  calls: byId('calls'),
};

/** @param {State} state @param {string} text */
function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function token() {
  return params.get('token') || ui.token.value.trim();
}

/**
 * An element with a class, and optional text (always as text).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag @param {string} cls @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** `m:ss`, or `h:mm:ss` past an hour. @param {number} ms */
function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** @param {number} ms */
const seconds = (ms) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

/** @param {WallChannel} c */
const speaker = (c) => c.label || `channel ${c.channel}`;

/** One call's card; updated in place, its elements made once. */
class CallCard {
  /** @param {WallCall} call */
  constructor(call) {
    this.id = call.call_id;
    this.updates = 0;
    /** @type {number | null} */
    this.started = null;
    /** @type {number | null} */
    this.endedAt = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.leaveTimer = null;
    this.root = el('article', 'card');
    this.root.dataset.callId = call.call_id;
    const head = el('header', 'card-head');
    this.callId = el('span', 'call-id', call.call_id);
    this.callId.title = call.call_id;
    this.source = el('span', 'source');
    this.duration = el('span', 'duration');
    this.state = el('span', 'state');
    head.append(this.callId, this.source, this.duration, this.state);
    this.channels = el('div', 'channels');
    /** @type {Map<number, { root: HTMLElement, who: HTMLElement, tone: HTMLElement, talk: HTMLElement, final: HTMLElement, partial: HTMLElement }>} */
    this.channelViews = new Map();
    this.talk = el('div', 'talk');
    this.ratio = el('div', 'ratio');
    this.ratio.setAttribute('role', 'img');
    this.talk.append(this.ratio);
    this.stats = el('p', 'stats');
    this.alerts = el('ul', 'alerts');
    this.error = el('p', 'error');
    this.root.append(head, this.channels, this.talk, this.stats, this.alerts, this.error);
    this.update(call);
  }

  /** @param {WallCall} call */
  update(call) {
    this.updates++;
    this.root.dataset.updates = String(this.updates);
    this.root.dataset.status = call.status;
    this.root.dataset.severity = call.severity ?? '';
    this.source.textContent = call.source ?? '';
    this.source.hidden = !call.source;
    this.state.textContent = call.status;
    const started = call.started_at ? Date.parse(call.started_at) : NaN;
    this.started = Number.isFinite(started) ? started : null;
    this.tick(Date.now());
    for (const c of call.channels) this.updateChannel(c);
    this.updateTalk(call);
    this.updateAlerts(call);
    this.error.textContent = call.error ? `${call.error.code}: ${call.error.message}` : '';
    this.error.hidden = !call.error;
  }

  /** @param {WallChannel} c */
  updateChannel(c) {
    let v = this.channelViews.get(c.channel);
    if (!v) {
      const root = el('div', 'chan');
      root.dataset.channel = String(c.channel);
      const head = el('div', 'chan-head');
      const who = el('span', 'who');
      const tone = el('span', 'tone');
      const talk = el('span', 'chan-talk');
      head.append(who, tone, talk);
      const words = el('p', 'words');
      const final = el('span', 'final');
      const partial = el('span', 'partial');
      words.append(final, partial);
      root.append(head, words);
      // Channels in order, whatever order they first show up in.
      const after = [...this.channelViews.entries()].filter(([n]) => n > c.channel).sort(([a], [b]) => a - b)[0];
      this.channels.insertBefore(root, after ? after[1].root : null);
      v = { root, who, tone, talk, final, partial };
      this.channelViews.set(c.channel, v);
    }
    v.who.textContent = speaker(c);
    v.who.classList.toggle('unnamed', !c.label);
    v.tone.dataset.tone = c.tone ?? '';
    v.tone.textContent = c.tone ?? 'no tone yet';
    v.root.classList.toggle('speaking', c.speaking);
    /** @type {string[]} */
    const talk = [];
    if (c.talk_ratio !== null) talk.push(`${Math.round(c.talk_ratio * 100)}%`);
    if (c.wpm !== null) talk.push(`${Math.round(c.wpm)} wpm`);
    if (c.interrupted) talk.push(`interrupted ${c.interrupted}`);
    v.talk.textContent = talk.join(' · ');
    v.final.textContent = c.text;
    v.partial.textContent = c.partial ? (c.text ? ` ${c.partial}` : c.partial) : '';
    v.root.classList.toggle('silent', !c.text && !c.partial);
  }

  /** The talk ratio bar (one part per channel, the rest is silence) and the call's overtalk and interruptions. @param {WallCall} call */
  updateTalk(call) {
    const ratios = call.channels.filter((c) => c.talk_ratio !== null);
    this.talk.hidden = ratios.length === 0;
    if (ratios.length > 0) {
      while (this.ratio.children.length < call.channels.length) this.ratio.append(el('span', 'part'));
      call.channels.forEach((c, i) => {
        const part = /** @type {HTMLElement} */ (this.ratio.children[i]);
        part.dataset.channel = String(c.channel);
        // CSSOM, not a style attribute: allowed under a CSP without 'unsafe-inline'.
        part.style.width = `${Math.round(Math.min(1, Math.max(0, c.talk_ratio ?? 0)) * 1000) / 10}%`;
      });
      this.ratio.setAttribute('aria-label', `talk ratio: ${ratios.map((c) => `${speaker(c)} ${Math.round((c.talk_ratio ?? 0) * 100)}%`).join(', ')}`);
    }
    const m = call.metrics;
    /** @type {string[]} */
    const stats = [];
    if (m?.overtalk_ms != null) stats.push(`overtalk ${seconds(m.overtalk_ms)}`);
    if (m?.interruptions != null) stats.push(`${m.interruptions} interruption${m.interruptions === 1 ? '' : 's'}`);
    if (m?.non_talk_ms != null) stats.push(`silence ${seconds(m.non_talk_ms)}`);
    if (call.language) stats.push(call.language);
    this.stats.textContent = stats.join(' · ');
  }

  /** @param {WallCall} call */
  updateAlerts(call) {
    const items = call.alerts.slice().reverse().map((a) => {
      const li = el('li', 'alert');
      li.dataset.severity = a.severity;
      li.append(el('span', 'sev', a.severity), el('span', 'rule', a.rule));
      const who = a.channel !== null ? call.channels.find((c) => c.channel === a.channel) : undefined;
      if (who) li.append(el('span', 'alert-who', speaker(who)));
      if (a.match) li.append(el('q', 'match', a.match));
      return li;
    });
    const earlier = call.alerts_total - call.alerts.length;
    if (earlier > 0) items.push(el('li', 'alert more', `+${earlier} earlier`));
    this.alerts.replaceChildren(...items);
    this.alerts.hidden = items.length === 0;
  }

  /** @param {number} now */
  tick(now) {
    this.duration.textContent = this.started === null ? '' : clock((this.endedAt ?? now) - this.started);
  }

  /** The call ended: greyed, then gone. @param {() => void} leave */
  end(leave) {
    if (this.endedAt !== null) return;
    this.endedAt = Date.now();
    this.tick(this.endedAt);
    this.root.dataset.status = 'ended';
    this.state.textContent = 'ended';
    for (const v of this.channelViews.values()) {
      v.partial.textContent = '';
      v.root.classList.remove('speaking');
    }
    this.leaveTimer = setTimeout(leave, ENDED_LINGER_MS);
  }

  remove() {
    if (this.leaveTimer) clearTimeout(this.leaveTimer);
    this.root.remove();
  }
}

/** The cards, by call id: newest call first, cards with a critical alert ahead (CSS order). */
class Wall {
  constructor() {
    /** @type {Map<string, CallCard>} */
    this.cards = new Map();
    /** @type {Set<string> | null} cards not (yet) in the snapshot being received */
    this.stale = null;
    this.updates = 0;
  }

  /** @param {WallCall} call */
  upsert(call) {
    this.updates++;
    ui.calls.dataset.updates = String(this.updates);
    this.stale?.delete(call.call_id);
    const card = this.cards.get(call.call_id);
    if (card) {
      if (card.endedAt === null) card.update(call);
      return;
    }
    const fresh = new CallCard(call);
    this.cards.set(call.call_id, fresh);
    // Newest first (the grid is kept in that order); a call whose start is not known yet goes last.
    let before = null;
    if (fresh.started !== null) {
      for (const node of ui.calls.children) {
        const other = this.cards.get(/** @type {HTMLElement} */ (node).dataset.callId ?? '');
        if (other && (other.started === null || other.started < fresh.started)) {
          before = node;
          break;
        }
      }
    }
    ui.calls.insertBefore(fresh.root, before);
    this.count();
  }

  /** @param {string} id */
  end(id) {
    this.cards.get(id)?.end(() => this.remove(id));
    this.count();
  }

  /** @param {string} id */
  remove(id) {
    this.cards.get(id)?.remove();
    this.cards.delete(id);
    this.count();
  }

  /** @param {{ calls: WallCall[], part: number, parts: number }} snap */
  snapshot(snap) {
    if (snap.part === 1) this.stale = new Set([...this.cards.keys()]);
    for (const call of snap.calls) this.upsert(call);
    if (snap.part >= snap.parts && this.stale) {
      // Calls that ended while the socket was down.
      for (const id of this.stale) this.remove(id);
      this.stale = null;
    }
  }

  count() {
    let live = 0;
    for (const c of this.cards.values()) if (c.endedAt === null) live++;
    ui.count.textContent = String(live);
  }

  tick() {
    const now = Date.now();
    for (const c of this.cards.values()) c.tick(now);
  }
}

const wall = new Wall();

/**
 * Browsers hide the HTTP answer of a refused WebSocket upgrade (the socket only reports 1006), so ask the
 * gateway over plain HTTP: a refused token is final, anything else is worth another try.
 * @returns {Promise<'unauthorized' | 'unreachable' | 'other'>}
 */
async function whyRefused() {
  try {
    const r = await fetch(`/v1/calls?status=live&token=${encodeURIComponent(token())}`);
    return r.status === 401 ? 'unauthorized' : 'other';
  } catch {
    return 'unreachable';
  }
}

/** The wall's socket, opened again with backoff whenever it drops; stops only on a refused token. */
class Feed {
  constructor() {
    this.attempt = 0;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retry = null;
  }

  start() {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    if (this.ws) return;
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/wall?${new URLSearchParams({ token: token() })}`;
    setStatus(this.attempt === 0 ? 'connecting' : 'reconnecting', this.attempt === 0 ? 'Connecting…' : 'Reconnecting…');
    const ws = new WebSocket(url);
    this.ws = ws;
    let opened = false;
    ws.addEventListener('open', () => { opened = true; });
    ws.addEventListener('message', (e) => this.onMessage(e.data));
    ws.addEventListener('close', (e) => void this.onClose(e.code, opened));
  }

  /** @param {unknown} data */
  onMessage(data) {
    if (typeof data !== 'string') return;
    /** @type {WallEvent} */
    let ev;
    try {
      ev = JSON.parse(data);
    } catch {
      return setStatus('error', 'the gateway sent something that is not JSON');
    }
    switch (ev.type) {
      case 'snapshot':
        wall.snapshot(ev);
        if (ev.part >= ev.parts) {
          this.attempt = 0;
          setStatus('live', 'Live.');
        }
        return;
      case 'call':
        return wall.upsert(ev.call);
      case 'ended':
        return wall.end(ev.call_id);
    }
  }

  /** @param {number} code @param {boolean} opened */
  async onClose(code, opened) {
    this.ws = null;
    if (!opened && (await whyRefused()) === 'unauthorized') {
      ui.tokenRow.hidden = false;
      return setStatus('error', 'CS_ERR_UNAUTHORIZED: the token was refused (HTTP 401)');
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt++;
    const why = opened ? `The connection closed with ${code}: ${CLOSE_REASONS[code] ?? 'an unexpected close'}` : 'The gateway cannot be reached';
    setStatus('reconnecting', `${why}; retrying in ${Math.ceil(delay / 1000)} s.`);
    this.retry = setTimeout(() => this.start(), delay);
  }
}

const feed = new Feed();

ui.tokenRow.hidden = Boolean(params.get('token'));
ui.tokenRow.addEventListener('submit', (e) => {
  e.preventDefault();
  if (!token()) return setStatus('error', 'Enter the gateway token first.');
  feed.attempt = 0;
  feed.start();
});
setInterval(() => wall.tick(), 1000);
if (token()) {
  feed.start();
} else {
  ui.token.focus();
  setStatus('error', 'Enter the gateway token first.');
}
