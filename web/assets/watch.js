// watch.js: the viewer's page. The carousel follows the stream's own cues,
// read by the cue SDK from the video's metadata tracks, so a card shows
// when its cue starts on the picture and leaves when it ends.
import { startPlayer, statusReporter, formatPrice } from './player.js';

const name = document.body.dataset.stream;
const video = document.getElementById('video');
const carousel = document.getElementById('carousel');
const empty = document.getElementById('empty');

// Read by tests and handy in the console.
const shopcast = { hls: null, cues: [], errors: [], state: 'connecting', latency: null, sdk: null, log: [], stalls: 0, mediaOffset: null };
window.shopcast = shopcast;

// A short diary of what the player did (its start, stalls, seeks, and every
// second its latency, forward buffer and rate), read by tests when a wait
// times out.
function note(what, extra) {
  shopcast.log.push(Object.assign({ t: Math.round(performance.now()), ct: +video.currentTime.toFixed(3), what }, extra));
  if (shopcast.log.length > 300) shopcast.log.splice(0, shopcast.log.length - 300);
}
for (const ev of ['loadedmetadata', 'playing', 'waiting', 'stalled', 'seeking', 'seeked', 'pause']) {
  video.addEventListener(ev, () => note(ev));
}
// Stalls: the video ran out of data after it had started playing.
video.addEventListener('waiting', () => { if (video.played.length) shopcast.stalls++; });
setInterval(() => {
  const b = video.buffered;
  note('tick', {
    lat: shopcast.latency == null ? null : +shopcast.latency.toFixed(3),
    buf: b.length ? +(b.end(b.length - 1) - video.currentTime).toFixed(3) : 0,
    rate: video.playbackRate,
  });
}, 1000);

const show = statusReporter(document);
const player = startPlayer(video, name, (r) => {
  if (r.state) shopcast.state = r.state;
  if ('latency' in r) shopcast.latency = r.latency;
  if (r.error) shopcast.errors.push(describe(r.error));
  show(r);
});
shopcast.hls = player.hls;
if (player.hls) {
  const H = globalThis.Hls;
  const hls = player.hls;
  hls.on(H.Events.LEVEL_LOADED, (_, d) => {
    if (shopcast.log.some((e) => e.what === 'level')) return; // the first one only
    note('level', { edge: +d.details.edge.toFixed(3), frags: d.details.fragments.length, partHoldBack: d.details.partHoldBack, start: hls.startPosition });
  });
  hls.on(H.Events.FRAG_BUFFERED, (_, d) => {
    if (shopcast.log.filter((e) => e.what === 'buffered').length >= 3) return;
    note('buffered', { sn: d.frag.sn, part: d.part ? d.part.index : -1, start: +(d.part || d.frag).start.toFixed(3) });
  });
  hls.on(H.Events.ERROR, (_, d) => note('error', { details: d.details, fatal: !!d.fatal }));
  // hls.js puts the first segment it loads at its playlist position on the
  // video's timeline, not at the stream's media time (the fMP4 timeline the
  // cue API speaks), unless the viewer joined at the first segment. The
  // stream's media time is currentTime + initPTS, found once per
  // discontinuity.
  hls.on(H.Events.INIT_PTS_FOUND, (_, d) => {
    if (d.id === 'main') shopcast.mediaOffset = d.initPTS / d.timescale;
  });
}

// First frame, in ms since navigation start.
if (video.requestVideoFrameCallback) {
  video.requestVideoFrameCallback(() => { shopcast.firstFrameMs = performance.now(); });
} else {
  video.addEventListener('loadeddata', () => { shopcast.firstFrameMs = performance.now(); }, { once: true });
}

function describe(err) {
  if (err && err.details) return { type: err.type, details: err.details, fatal: !!err.fatal, code: err.response && err.response.code };
  return { details: String(err && err.message || err), fatal: true };
}

const unmute = document.getElementById('unmute');
unmute.addEventListener('click', () => { video.muted = !video.muted; });
// The label follows the sound, whichever control changed it.
video.addEventListener('volumechange', () => { unmute.textContent = video.muted ? 'Unmute' : 'Mute'; });

function card(cue) {
  const p = cue.product;
  const li = document.createElement('li');
  li.className = 'card';
  li.dataset.cueId = cue.id;
  li.dataset.sku = p.sku;
  const img = document.createElement('img');
  img.src = p.image_url;
  img.alt = p.title;
  img.width = 96;
  img.height = 96;
  const body = document.createElement('div');
  const title = document.createElement('h3');
  title.textContent = p.title;
  const price = document.createElement('p');
  price.className = 'price';
  price.textContent = formatPrice(p.price, navigator.language);
  body.append(title, price);
  for (const [cls, text] of [['badge', p.badge], ['discount', p.discount]]) {
    if (!text) continue;
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    body.append(s);
  }
  const buy = document.createElement('a');
  buy.className = 'buy';
  buy.href = p.url;
  buy.target = '_blank';
  buy.rel = 'noopener';
  buy.textContent = 'Buy';
  buy.setAttribute('aria-label', 'Buy ' + p.title + ', ' + price.textContent);
  body.append(buy);
  li.append(img, body);
  return li;
}

function refreshEmpty() {
  empty.hidden = carousel.children.length > 0;
}

function onStart(cue) {
  if (cue.type !== 'product' || !cue.product) return; // types we do not know are skipped
  const entry = shopcast.sdk && shopcast.sdk.entries.get(cue.id);
  const start = entry ? entry.start : video.currentTime; // on the video's timeline, seconds
  shopcast.cues.push({
    id: cue.id,
    product: cue.product,
    start,
    mediaTime: shopcast.mediaOffset === null ? null : start + shopcast.mediaOffset, // the stream's, seconds
    shownAt: video.currentTime,
    end: null,
  });
  if (!carousel.querySelector('[data-cue-id="' + CSS.escape(cue.id) + '"]')) {
    carousel.prepend(card(cue));
  }
  refreshEmpty();
}

function onEnd(cue) {
  for (const c of shopcast.cues) if (c.id === cue.id && c.end === null) c.end = video.currentTime;
  const el = carousel.querySelector('[data-cue-id="' + CSS.escape(cue.id) + '"]');
  if (el) el.remove();
  refreshEmpty();
}

function onAdd(cue) {
  if (cue.product && cue.product.image_url) new Image().src = cue.product.image_url; // preload
}

// A dynamic import, so that the player still plays if the SDK is missing.
import('/sdk/shopcast-cues.js')
  .then(({ attach }) => { shopcast.sdk = attach(video, { onStart, onEnd, onAdd }); })
  .catch((err) => { shopcast.errors.push({ details: 'cue SDK: ' + err.message, fatal: false }); });
refreshEmpty();
