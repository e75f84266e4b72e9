// replay.js: a past sale. The recording plays from its start; the carousel
// shows the products that were on screen at the playhead, recomputed on
// every time update and seek, so seeking back brings back the product of
// that moment; the list of the sale's products seeks to where each was
// presented.
//
// Times come from the recording's cues.json (offset_ms, duration_ms: the
// playback timeline, where video.currentTime lives); the products' details
// (picture, price, link) from the cues themselves, which the cue SDK reads
// off the playlist's DATERANGEs and the segments' emsg boxes.
import { startRecording, statusReporter, productCard, formatClock } from './player.js';

const name = document.body.dataset.stream;
const id = document.body.dataset.recording;
const video = document.getElementById('video');
const carousel = document.getElementById('carousel');
const empty = document.getElementById('empty');
const list = document.getElementById('products');
const noProducts = document.getElementById('no-products');

// Read by tests and handy in the console.
const shopcast = { hls: null, recording: null, cues: [], products: {}, active: [], shownAt: {}, errors: [], state: 'connecting', seeks: [], log: [] };
window.shopcast = shopcast;

function note(what, extra) {
  shopcast.log.push(Object.assign({ t: Math.round(performance.now()), ct: +video.currentTime.toFixed(3), what }, extra));
  if (shopcast.log.length > 200) shopcast.log.splice(0, shopcast.log.length - 200);
}
for (const ev of ['loadedmetadata', 'playing', 'waiting', 'seeking', 'seeked', 'pause', 'ended']) {
  video.addEventListener(ev, () => note(ev));
}

const show = statusReporter(document, { playing: '▶ Replay', ended: 'Replay ended', missing: 'This replay does not exist' });
function onReport(r) {
  if (r.state) shopcast.state = r.state;
  if (r.error) shopcast.errors.push(describe(r.error));
  show(r);
}

function describe(err) {
  if (err && err.details) return { type: err.type, details: err.details, fatal: !!err.fatal, code: err.response && err.response.code };
  return { details: String(err && err.message || err), fatal: true };
}

const unmute = document.getElementById('unmute');
unmute.addEventListener('click', () => { video.muted = !video.muted; });
video.addEventListener('volumechange', () => { unmute.textContent = video.muted ? 'Unmute' : 'Mute'; });

// The cues of the sale, in playback time: [{id, title, start, end}],
// seconds; end is Infinity for a cue open until the end.
function timed(entries) {
  return entries.map((c) => ({
    id: c.id,
    title: c.title || c.id,
    start: c.offset_ms / 1000,
    end: c.duration_ms > 0 ? (c.offset_ms + c.duration_ms) / 1000 : Infinity,
  })).sort((a, b) => a.start - b.start);
}

// The carousel holds the cards of the cues whose span holds the playhead.
// It is recomputed on every time update and seek, and by a timer at the
// next start or end, so that a card changes on time rather than at the
// next time update (every 250 ms or so).
let timer = null;
let redraw = false; // the list was rebuilt: mark its current entries again
function refresh() {
  const t = video.currentTime;
  const on = shopcast.cues.filter((c) => c.start <= t && t < c.end && shopcast.products[c.id]);
  const ids = on.map((c) => c.id);
  let next = Infinity;
  for (const c of shopcast.cues) {
    if (c.start > t) next = Math.min(next, c.start - t);
    else if (c.end > t) next = Math.min(next, c.end - t);
  }
  clearTimeout(timer);
  if (Number.isFinite(next) && !video.paused) {
    timer = setTimeout(refresh, Math.max(10, (next * 1000) / (video.playbackRate || 1)));
  }
  const changed = ids.join('\n') !== shopcast.active.join('\n');
  if (changed) {
    for (const id of ids) if (!shopcast.active.includes(id)) shopcast.shownAt[id] = t;
    shopcast.active = ids;
    const kept = new Map([...carousel.children].map((el) => [el.dataset.cueId, el]));
    // Newest first, as on the watch page.
    carousel.replaceChildren(...on.slice().reverse().map((c) => kept.get(c.id) || productCard(shopcast.products[c.id])));
    empty.hidden = on.length > 0;
  }
  if (!changed && !redraw) return;
  redraw = false;
  for (const li of list.children) {
    const c = shopcast.cues.find((x) => x.id === li.dataset.cueId);
    const now = !!c && ids.includes(c.id);
    const b = li.querySelector('button');
    if (now) b.setAttribute('aria-current', 'true');
    else b.removeAttribute('aria-current');
  }
}
for (const ev of ['timeupdate', 'seeking', 'seeked', 'loadedmetadata', 'play', 'pause', 'ratechange']) video.addEventListener(ev, refresh);

// The list: one button per product cue, seeking to its start.
function renderList() {
  const items = shopcast.cues.map((c) => {
    const p = shopcast.products[c.id] && shopcast.products[c.id].product;
    const title = p ? p.title : c.title;
    const li = document.createElement('li');
    li.dataset.cueId = c.id;
    if (p) li.dataset.sku = p.sku;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'jump';
    if (p && p.image_url) {
      const img = document.createElement('img');
      img.src = p.image_url;
      img.alt = '';
      img.width = 40;
      img.height = 40;
      b.append(img);
    }
    const when = document.createElement('span');
    when.className = 'when';
    when.textContent = formatClock(c.start);
    const what = document.createElement('span');
    what.className = 'what';
    what.textContent = title;
    b.append(when, what);
    b.setAttribute('aria-label', 'Play from ' + formatClock(c.start) + ': ' + title);
    b.addEventListener('click', () => jump(c));
    li.append(b);
    return li;
  });
  // Keep the focus on the button it was on.
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('#products li');
  const focusedId = focused && focused.dataset.cueId;
  list.replaceChildren(...items);
  if (focusedId) {
    const again = list.querySelector('li[data-cue-id="' + CSS.escape(focusedId) + '"] button');
    if (again) again.focus();
  }
  noProducts.hidden = items.length > 0;
  redraw = true;
  refresh();
}

function jump(c) {
  shopcast.seeks.push({ id: c.id, target: c.start, landed: null });
  video.currentTime = c.start;
  video.play().catch(() => { /* the controls remain */ });
  refresh();
}
video.addEventListener('seeked', () => {
  const s = shopcast.seeks[shopcast.seeks.length - 1];
  if (s && s.landed === null) s.landed = video.currentTime;
});

function onAdd(cue) {
  if (cue.type !== 'product' || !cue.product) return; // types we do not know are skipped
  if (shopcast.products[cue.id]) return;
  shopcast.products[cue.id] = cue;
  if (cue.product.image_url) new Image().src = cue.product.image_url; // preload
  renderList();
}

let cuesText = '';
async function loadCues(base) {
  const resp = await fetch(new URL('cues.json', base), { cache: 'no-store' });
  if (!resp.ok) throw new Error('cues.json: ' + resp.status);
  const text = await resp.text();
  if (text === cuesText) return; // a growing recording's, unchanged
  cuesText = text;
  shopcast.cues = timed(JSON.parse(text));
  renderList();
}

async function main() {
  const api = '/api/v1/streams/' + encodeURIComponent(name) + '/recordings/' + encodeURIComponent(id);
  const resp = await fetch(api, { cache: 'no-store' });
  if (resp.status === 404) {
    onReport({ state: 'missing' });
    return;
  }
  if (!resp.ok) throw new Error('recording: ' + resp.status);
  const rec = await resp.json();
  shopcast.recording = rec;
  const base = new URL(rec.url, location.href);
  // The SDK first: it must see the player's metadata track from its first
  // cue. Without it, the list still seeks (titles from cues.json).
  try {
    const { attach } = await import('/sdk/shopcast-cues.js');
    attach(video, { onAdd });
  } catch (err) {
    shopcast.errors.push({ details: 'cue SDK: ' + err.message, fatal: false });
  }
  const player = startRecording(video, base.href, onReport, { startPosition: 0 });
  shopcast.hls = player.hls;
  await loadCues(base);
  if (rec.state === 'recording') {
    // A sale still on air: its recording and its cues grow.
    const timer = setInterval(async () => {
      try {
        await loadCues(base);
        const r = await fetch(api, { cache: 'no-store' });
        if (r.ok && (await r.json()).state !== 'recording') clearInterval(timer);
      } catch { /* next time */ }
    }, 5000);
  }
}

main().catch((err) => onReport({ state: 'error', error: err }));
