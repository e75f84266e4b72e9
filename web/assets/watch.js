// watch.js: the viewer's page. The carousel follows the stream's own cues,
// read by the cue SDK from the video's metadata tracks, so a card shows
// when its cue starts on the picture and leaves when it ends.
//
// While the stream is live its recording grows (an EVENT playlist): "From
// the start" plays that from 0, with a scrubber, and "Back to live" goes
// back to the LL-HLS edge. Each switch gives the video to a new hls.js and
// a new cue SDK, as the two timelines differ.
import { startPlayer, startRecording, statusReporter, productCard, formatClock, qualityMenu } from './player.js';

const name = document.body.dataset.stream;
const video = document.getElementById('video');
const carousel = document.getElementById('carousel');
const empty = document.getElementById('empty');

// Read by tests and handy in the console.
const shopcast = { hls: null, cues: [], errors: [], state: 'connecting', latency: null, sdk: null, log: [], stalls: 0, mediaOffset: null, mode: 'live', recording: null, switchedAt: null };
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

const show = statusReporter(document, { dvr: '⟲ Behind live', ended: 'Stream ended' });
let player = null;

function onReport(r) {
  if (r.state) shopcast.state = shopcast.mode === 'dvr' && r.state === 'playing' ? 'dvr' : r.state;
  if ('latency' in r) shopcast.latency = r.latency;
  if (r.error) shopcast.errors.push(describe(r.error));
  show(Object.assign({}, r, r.state ? { state: shopcast.state } : {}));
}

// follow reads what tests and the console want from one hls.js instance.
let dropMenu = () => {};
function follow(hls) {
  shopcast.hls = hls;
  shopcast.mediaOffset = null;
  // The quality menu follows the player: the live stream's renditions, or
  // the recording's.
  dropMenu();
  dropMenu = qualityMenu(hls, document.querySelector('.status'));
  if (!hls) return;
  const H = globalThis.Hls;
  let levels = 0;
  let buffered = 0;
  hls.on(H.Events.LEVEL_LOADED, (_, d) => {
    if (levels++) return; // the first one only
    note('level', { edge: +d.details.edge.toFixed(3), frags: d.details.fragments.length, partHoldBack: d.details.partHoldBack, start: hls.startPosition, live: d.details.live });
  });
  hls.on(H.Events.FRAG_BUFFERED, (_, d) => {
    if (buffered++ >= 3) return;
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

function playLive() {
  player = startPlayer(video, name, onReport);
  follow(player.hls);
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
    carousel.prepend(productCard(cue));
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

// The cue SDK follows one player's timeline: a switch starts a new one, on
// an empty carousel.
let sdkModule = null;
function attachCues() {
  if (shopcast.sdk) shopcast.sdk.detach();
  shopcast.sdk = null;
  carousel.replaceChildren();
  refreshEmpty();
  if (sdkModule) shopcast.sdk = sdkModule.attach(video, { onStart, onEnd, onAdd });
}

// switchTo gives the video to a new player, the SDK first (it must see the
// player's metadata track from its first cue).
function switchTo(mode, start) {
  if (player) player.stop();
  shopcast.mode = mode;
  shopcast.switchedAt = performance.now();
  note('switch', { mode });
  attachCues();
  start();
  dvr.hidden = mode !== 'dvr';
  toLive.hidden = mode !== 'dvr';
  fromStart.hidden = mode === 'dvr';
  position.textContent = '';
  shopcast.latency = null;
  show({ latency: null });
  (mode === 'dvr' ? toLive : fromStart).focus();
}

// DVR. The stream's current recording is the newest one still being
// written; the API lists the newest first.
const fromStart = document.getElementById('from-start');
const toLive = document.getElementById('to-live');
const dvr = document.getElementById('dvr');
const scrub = document.getElementById('scrub');
const position = document.getElementById('position');

async function currentRecording() {
  const resp = await fetch('/api/v1/streams/' + encodeURIComponent(name) + '/recordings', { cache: 'no-store' });
  if (!resp.ok) return null;
  const { recordings } = await resp.json();
  return (recordings || []).find((r) => r.state === 'recording' || r.state === 'live') || null;
}

let looking = null;
async function lookForRecording() {
  if (shopcast.mode !== 'live' || looking) return;
  looking = currentRecording()
    .then((rec) => {
      shopcast.recording = rec && rec.url;
      fromStart.disabled = !rec;
    })
    .catch(() => { fromStart.disabled = true; })
    .finally(() => { looking = null; });
}

fromStart.addEventListener('click', async () => {
  fromStart.disabled = true;
  let rec = null;
  try { rec = await currentRecording(); } catch { /* below */ }
  if (!rec) {
    shopcast.errors.push({ details: 'no recording of this stream to rewind', fatal: false });
    lookForRecording();
    return;
  }
  shopcast.recording = rec.url;
  switchTo('dvr', () => {
    player = startRecording(video, rec.url, onReport, { startPosition: 0 });
    follow(player.hls);
  });
});

toLive.addEventListener('click', () => {
  switchTo('live', playLive);
  fromStart.disabled = false;
});

// The scrubber spans what the recording holds so far (the native controls
// show no timeline while the playlist grows).
let dragging = false;
scrub.addEventListener('pointerdown', () => { dragging = true; });
scrub.addEventListener('pointerup', () => { dragging = false; });
scrub.addEventListener('input', () => {
  video.currentTime = Number(scrub.value);
  showPosition();
});
function showPosition() {
  if (shopcast.mode !== 'dvr') return;
  const s = video.seekable;
  const end = s.length ? s.end(s.length - 1) : (Number.isFinite(video.duration) ? video.duration : 0);
  scrub.max = String(Math.max(0, end));
  if (!dragging) scrub.value = String(video.currentTime);
  const text = formatClock(video.currentTime) + ' / ' + formatClock(end);
  position.textContent = text;
  scrub.setAttribute('aria-valuetext', text);
}
for (const ev of ['timeupdate', 'durationchange', 'progress', 'seeked']) video.addEventListener(ev, showPosition);
setInterval(lookForRecording, 5000);
lookForRecording();

// A dynamic import, so that the player still plays if the SDK is missing.
import('/sdk/shopcast-cues.js')
  .then((m) => { sdkModule = m; if (!shopcast.sdk) shopcast.sdk = m.attach(video, { onStart, onEnd, onAdd }); })
  .catch((err) => { shopcast.errors.push({ details: 'cue SDK: ' + err.message, fatal: false }); });
playLive();
refreshEmpty();
