// audience.js: the viewer's side of the participation loop. It sends the
// page's signals to /api/v1/streams/NAME/signals (a heartbeat every few
// seconds, the hearts, and the votes, Buy clicks and card impressions the
// cards announce as DOM events), and shows what /live/NAME/pulse.json says:
// "N watching" and the other viewers' hearts floating up.
//
// The viewer is an anonymous random id made here and kept in
// sessionStorage (this tab only); no cookie is set, on media URLs or
// elsewhere. The play token the page was opened with (?token=) goes with
// every signal and pulse request, as the server asks for it when signed
// play URLs are on.

const name = document.body.dataset.stream;
const enc = encodeURIComponent(name);
const token = new URLSearchParams(location.search).get('token');
const tokenQuery = token ? '?token=' + encodeURIComponent(token) : '';
const signalsURL = '/api/v1/streams/' + enc + '/signals' + tokenQuery;
const pulseURL = '/live/' + enc + '/pulse.json' + tokenQuery;

const VIEWER_KEY = 'shopcast.viewer';
const FLUSH_MS = 1000; // hearts are batched this long
const MAX_FLOATING = 12; // hearts on screen at once

function newViewerId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function viewerId() {
  try {
    let id = sessionStorage.getItem(VIEWER_KEY);
    if (!id || !/^[A-Za-z0-9_-]{16,64}$/.test(id)) {
      id = newViewerId();
      sessionStorage.setItem(VIEWER_KEY, id);
    }
    return id;
  } catch {
    return newViewerId(); // storage off: one id for this page's life
  }
}

// Read by tests and handy in the console.
// The server's signal_max_batch, as the pulse tells it; its default until then.
let maxBatch = 10;

const state = {
  viewer: viewerId(),
  pulse: null,
  sent: { heartbeat: 0, impression: 0, click: 0, reaction: 0, vote: 0 },
  refused: [],
  heartsShown: 0, // other viewers' hearts floated up
  heartbeatS: 10,
  errors: [],
};
window.shopcastAudience = state;

const heartBtn = document.getElementById('heart');
const watching = document.getElementById('watching');
const layer = document.getElementById('hearts');

let queue = [];
// ownUnseen counts the own hearts sent that no pulse has shown yet, so
// that they do not float up a second time as someone else's. It counts
// from the send, as the pulse may show them before the answer comes.
let ownUnseen = 0;
let flushTimer = null;

// send posts signals now: fetch with keepalive, so that a signal sent as
// the page closes still goes; sendBeacon on pagehide (below).
async function send(signals) {
  for (let i = 0; i < signals.length; i += maxBatch) {
    const batch = signals.slice(i, i + maxBatch);
    const body = JSON.stringify(batch.length === 1
      ? Object.assign({ viewer: state.viewer }, batch[0])
      : { viewer: state.viewer, signals: batch });
    const hearts = batch.filter((s) => s.kind === 'reaction').length;
    ownUnseen += hearts;
    try {
      const resp = await fetch(signalsURL, { method: 'POST', body, keepalive: true, headers: { 'Content-Type': 'application/json' } });
      if (!resp.ok) {
        ownUnseen = Math.max(0, ownUnseen - hearts);
        state.refused.push({ status: resp.status, kinds: batch.map((s) => s.kind) });
        continue;
      }
      const out = await resp.json();
      const refused = new Set();
      for (const r of out.refused || []) {
        refused.add(r.index);
        if (batch[r.index].kind === 'reaction') ownUnseen = Math.max(0, ownUnseen - 1);
        state.refused.push({ status: 202, kind: batch[r.index].kind, reason: r.reason });
      }
      batch.forEach((s, i) => {
        if (refused.has(i)) return;
        state.sent[s.kind]++;
      });
    } catch (err) {
      ownUnseen = Math.max(0, ownUnseen - hearts);
      state.errors.push(String(err && err.message || err));
    }
  }
}

function enqueue(signal, now) {
  queue.push(signal);
  if (now || queue.length >= maxBatch) return flush();
  if (!flushTimer) flushTimer = setTimeout(flush, FLUSH_MS);
}

function flush() {
  clearTimeout(flushTimer);
  flushTimer = null;
  const q = queue;
  queue = [];
  if (q.length) return send(q);
}

addEventListener('pagehide', () => {
  if (!queue.length || !navigator.sendBeacon) return;
  const body = JSON.stringify({ viewer: state.viewer, signals: queue.slice(0, maxBatch) });
  navigator.sendBeacon(signalsURL, new Blob([body], { type: 'application/json' }));
  queue = [];
});

// The cards announce what the viewer saw and did.
document.addEventListener('shopcast:vote', (e) => {
  const d = e.detail || {};
  if (d.stream !== undefined && d.stream !== name) return;
  enqueue({ kind: 'vote', poll: String(d.poll), option: Number(d.option) }, true);
});
document.addEventListener('shopcast:click', (e) => {
  const d = e.detail || {};
  if (d.stream !== undefined && d.stream !== name) return;
  enqueue({ kind: 'click', cue: String(d.cue), sku: String(d.sku) }, true);
});
const seen = new Set(); // one impression per card and page
document.addEventListener('shopcast:impression', (e) => {
  const d = e.detail || {};
  if ((d.stream !== undefined && d.stream !== name) || seen.has(d.cue)) return;
  seen.add(d.cue);
  enqueue({ kind: 'impression', cue: String(d.cue) });
});

// Hearts: the own one floats at once; taps are batched.
if (heartBtn) {
  heartBtn.addEventListener('click', () => {
    floatHeart(true);
    enqueue({ kind: 'reaction' });
  });
}

function floatHeart(own) {
  if (!layer || layer.childElementCount >= MAX_FLOATING) return;
  const h = document.createElement('span');
  h.className = own ? 'float-heart own' : 'float-heart';
  h.textContent = '♥';
  h.style.left = (10 + Math.random() * 70) + '%';
  h.addEventListener('animationend', () => h.remove());
  layer.append(h);
}

// Heartbeats while the page is open. A tab in the background may still be
// playing; browsers slow its timers down, and a viewer gone longer than two
// intervals stops counting.
let beatTimer = null;
function beat() {
  send([{ kind: 'heartbeat' }]);
}
function startBeats(seconds) {
  if (beatTimer && seconds === state.heartbeatS) return;
  state.heartbeatS = seconds;
  clearInterval(beatTimer);
  beatTimer = setInterval(beat, seconds * 1000);
}

// The pulse, every second: the CDN (or the origin) answers it for everyone.
let lastTotal = null;
async function poll() {
  try {
    const resp = await fetch(pulseURL);
    if (!resp.ok) return;
    const p = await resp.json();
    state.pulse = p;
    if (p.heartbeat_s) startBeats(p.heartbeat_s);
    if (p.max_batch > 0) maxBatch = p.max_batch;
    if (watching) watching.textContent = p.viewers === 1 ? '1 watching' : p.viewers + ' watching';
    if (lastTotal !== null && p.reactions_total > lastTotal) {
      const delta = p.reactions_total - lastTotal;
      const others = Math.max(0, delta - ownUnseen);
      ownUnseen = Math.max(0, ownUnseen - delta);
      for (let i = 0; i < Math.min(others, MAX_FLOATING); i++) setTimeout(() => floatHeart(false), i * 120);
      state.heartsShown += others;
    }
    if (lastTotal === null || p.reactions_total >= lastTotal) lastTotal = p.reactions_total;
  } catch (err) {
    state.errors.push(String(err && err.message || err));
  }
}

beat();
startBeats(state.heartbeatS);
poll();
setInterval(poll, 1000);
