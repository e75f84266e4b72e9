// Tests of shopcast-cues.js on synthetic text tracks shaped like the ones
// hls.js 1.7 and Safari create, and on events shaped like Shaka Player
// 5.2's. Run: node --test (Go's TestSDK runs it). The real players are
// checked in chromium by e2e/browser_shaka_test.go and browser_hlsjs_test.go.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { attach, attachShaka, parseCarrier, decodeData } from './shopcast-cues.js';

// The DATERANGE line Go produces for testdata/cues_example.json
// (overlay/testdata/example.daterange, checked by TestDateRangeGolden).
const goldenLine = readFileSync(new URL('../testdata/example.daterange', import.meta.url), 'utf8').trim();
const goldenHex = /X-COM-SHOPCAST-CUE=(0x[0-9A-F]+)/.exec(goldenLine)[1];

class FakeTrack extends EventTarget {
  constructor(kind, label) {
    super();
    this.kind = kind;
    this.label = label;
    this.mode = 'disabled';
    this.cues = [];
  }
  addCue(cue) { this.cues.push(cue); }
  removeCue(cue) { this.cues = this.cues.filter((c) => c !== cue); }
}

class FakeTrackList extends EventTarget {
  constructor() { super(); this.length = 0; }
  add(track) {
    this[this.length++] = track;
    const ev = new Event('addtrack');
    ev.track = track;
    this.dispatchEvent(ev);
  }
}

// FakeVideo plays by seek(t): currentTime moves, then timeupdate and each
// track's cuechange fire, as a browser's "time marches on" would.
class FakeVideo extends EventTarget {
  constructor() {
    super();
    this.textTracks = new FakeTrackList();
    this.currentTime = 0;
    this.paused = true;
    this.playbackRate = 1;
  }
  seek(t) {
    this.currentTime = t;
    this.dispatchEvent(new Event('timeupdate'));
    for (let i = 0; i < this.textTracks.length; i++) {
      this.textTracks[i].dispatchEvent(new Event('cuechange'));
    }
  }
}

const productCue = (id, extra = {}) => ({
  v: 1, id, type: 'product',
  product: {
    sku: `SKU-${id}`, title: `Product ${id}`, price: { amount: '19.99', currency: 'EUR' },
    image_url: `https://cdn.example.com/${id}.jpg`, url: `https://shop.example.com/${id}`,
  },
  ...extra,
});

const toHex = (s) => '0x' + Buffer.from(s, 'utf8').toString('hex').toUpperCase();

// hls.js: a VTTCue on the 'id3' metadata track; value {key, info, data}
// from its ID3 parser, type the emsg scheme (or 'org.id3' for TS).
const hlsID3 = (start, end, json) => ({
  startTime: start, endTime: end, type: 'https://aomedia.org/emsg/ID3',
  value: { key: 'TXXX', info: 'shopcast', data: JSON.stringify(json) },
});
// hls.js: one cue per X- attribute of a DATERANGE, id = the DATERANGE ID,
// data the raw attribute value (a hexadecimal-sequence stays "0x...").
const hlsRange = (start, end, id, key, data) => ({
  id, startTime: start, endTime: end, type: 'com.apple.quicktime.HLS', value: { key, data },
});
// Safari: DataCue, value {key, info, data}; type 'org.id3' for ID3 and
// 'com.apple.quicktime.HLS' for DATERANGE, whose hex data is binary.
const safariID3 = (start, end, json) => ({
  startTime: start, endTime: end, type: 'org.id3',
  value: { key: 'TXXX', info: 'shopcast', data: JSON.stringify(json) },
});
const safariRange = (start, end, id, json) => ({
  id, startTime: start, endTime: end, type: 'com.apple.quicktime.HLS',
  value: { key: 'X-COM-SHOPCAST-CUE', data: new TextEncoder().encode(JSON.stringify(json)).buffer },
});

function setup(label = 'id3') {
  const video = new FakeVideo();
  const track = new FakeTrack('metadata', label);
  video.textTracks.add(track);
  const log = [];
  const ctl = attach(video, {
    onStart: (cue) => log.push(`start ${cue.id}`),
    onEnd: (cue) => log.push(`end ${cue.id}`),
  });
  const events = [];
  for (const type of ['cuestart', 'cueend', 'cueadded']) {
    ctl.addEventListener(type, (e) => events.push(`${type} ${e.detail.id} ${e.detail.source}`));
  }
  return { video, track, log, events, ctl };
}

test('decodeData reads strings, hex and binary', () => {
  assert.equal(decodeData('{"a":1}'), '{"a":1}');
  assert.equal(decodeData('0x7B7D'), '{}');
  assert.equal(decodeData(new TextEncoder().encode('é').buffer), 'é');
  assert.equal(decodeData(new TextEncoder().encode('ok')), 'ok');
  assert.equal(decodeData(42), null);
  assert.equal(decodeData(new Uint8Array([0xff]).buffer), null);
});

test('parseCarrier reads the golden DATERANGE hex from Go', () => {
  const c = parseCarrier(hlsRange(12, 42, 'sneaker-42', 'X-COM-SHOPCAST-CUE', goldenHex));
  assert.equal(c.source, 'daterange');
  assert.equal(c.id, 'sneaker-42');
  assert.equal(c.end, false);
  assert.equal(c.cue.product.price.amount, '89.90');
  assert.equal(c.cue.duration_ms, 30000);
});

test('parseCarrier ignores what is not a shopcast cue', () => {
  const none = [
    null, {}, { value: null },
    { value: { key: 'TXXX', info: 'other', data: '{"v":1,"id":"x"}' } },
    { value: { key: 'TIT2', data: 'a title' } },
    { value: { key: 'X-COM-SHOPCAST-SKU', data: 'SKU-1' } },
    { value: { key: 'TXXX', info: 'shopcast', data: 'not json' } },
    { value: { key: 'TXXX', info: 'shopcast', data: '{"v":2,"id":"x"}' } },
    { value: { key: 'TXXX', info: 'shopcast', data: '{"v":1}' } },
    { value: { key: 'X-COM-SHOPCAST-CUE', data: '0xZZ' } },
  ];
  for (const c of none) assert.equal(parseCarrier(c), null, JSON.stringify(c));
  // hls.js's fallback when a cue takes no value: JSON text.
  const text = parseCarrier({ text: JSON.stringify({ type: 'org.id3', key: 'TXXX', info: 'shopcast', data: '{"v":1,"id":"t"}' }) });
  assert.equal(text.id, 't');
});

test('hls.js: ID3 and DATERANGE copies give one start and one end', () => {
  const { video, track, log, events } = setup();
  const json = productCue('a', { duration_ms: 10000 });
  track.addCue(hlsRange(10, 20, 'a', 'X-COM-SHOPCAST-SKU', 'SKU-a'));
  track.addCue(hlsRange(10, 20, 'a', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(json))));
  track.addCue(hlsID3(10, 20, json));
  // Re-sent at each segment start with the same presentation time.
  track.addCue(hlsID3(10, 20, json));
  track.addCue(hlsID3(10, 20, json));
  video.seek(5);
  assert.deepEqual(log, []);
  assert.deepEqual(events, ['cueadded a daterange']);
  video.seek(10);
  video.seek(12);
  assert.deepEqual(log, ['start a']);
  video.seek(19.9);
  video.seek(20);
  assert.deepEqual(log, ['start a', 'end a']);
  assert.deepEqual(events, ['cueadded a daterange', 'cuestart a daterange', 'cueend a daterange']);
});

test('the in-band copy sets the start when the DATERANGE copy lands an audio frame early', () => {
  const { video, track, log } = setup();
  const json = productCue('early', { duration_ms: 5000 });
  // PROGRAM-DATE-TIME is anchored at the segment's first (audio) sample,
  // 21 ms before the keyframe the emsg names.
  track.addCue(hlsRange(9.979, 14.979, 'early', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(json))));
  track.addCue(hlsID3(10, 15, json));
  video.seek(9.99);
  assert.deepEqual(log, []);
  video.seek(10);
  assert.deepEqual(log, ['start early']);
});

test('without an in-band copy the DATERANGE copy sets the start', () => {
  const { video, track, log } = setup();
  const json = productCue('dr', { duration_ms: 5000 });
  track.addCue(hlsRange(9.979, 14.979, 'dr', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(json))));
  video.seek(9.98);
  assert.deepEqual(log, ['start dr']);
});

test('hls.js: an open-ended cue outlives its cut-short ID3 copies and ends on the END event', () => {
  const { video, track, log, ctl } = setup();
  const a = productCue('a');
  const b = productCue('b');
  // hls.js ends an open ID3 cue when the next one arrives (here b at 4 s).
  track.addCue(hlsID3(2, 4, a));
  track.addCue(hlsID3(4, Infinity, b));
  video.seek(3);
  video.seek(5);
  assert.deepEqual(log, ['start a', 'start b']);
  assert.deepEqual(ctl.active.map((c) => c.id), ['a', 'b']);
  // DELETE a at 7 s: the END event.
  track.addCue(hlsID3(7, 7.25, { v: 1, id: 'a', end: true }));
  video.seek(6.9);
  assert.deepEqual(log, ['start a', 'start b']);
  video.seek(7);
  assert.deepEqual(log, ['start a', 'start b', 'end a']);
  assert.deepEqual(ctl.active.map((c) => c.id), ['b']);
  // The END event's copy leaving does not re-start it.
  video.seek(8);
  assert.deepEqual(log, ['start a', 'start b', 'end a']);
});

test('hls.js: the DATERANGE END-DATE of an open-ended cue ends it', () => {
  const { video, track, log } = setup();
  const json = productCue('a');
  const range = hlsRange(2, Infinity, 'a', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(json)));
  track.addCue(range);
  video.seek(3);
  assert.deepEqual(log, ['start a']);
  range.endTime = 9; // the playlist reload that carried END-DATE
  video.seek(8.5);
  assert.deepEqual(log, ['start a']);
  video.seek(9.1);
  assert.deepEqual(log, ['start a', 'end a']);
});

test('Safari: DataCues with open ends (Safari 26) still end on duration_ms', () => {
  const { video, track, log, events } = setup('');
  const json = productCue('s', { duration_ms: 5000 });
  track.addCue(safariRange(30, 35, 's', json));
  track.addCue(safariID3(30, Infinity, json));
  video.seek(30.5);
  video.seek(34);
  assert.deepEqual(log, ['start s']);
  video.seek(35.1);
  assert.deepEqual(log, ['start s', 'end s']);
  assert.equal(events.filter((e) => e.startsWith('cuestart')).length, 1);
});

test('late join: a cue already active fires at attach', () => {
  const video = new FakeVideo();
  const track = new FakeTrack('metadata', 'id3');
  track.addCue(hlsID3(100, 130, productCue('late', { duration_ms: 30000 })));
  video.textTracks.add(track);
  video.currentTime = 117;
  const started = [];
  const ctl = attach(video, { onStart: (c) => started.push(c.id) });
  assert.deepEqual(started, ['late']);
  assert.equal(ctl.active[0].product.sku, 'SKU-late');
  // Safari's native metadata tracks start disabled: attach turns them on.
  assert.equal(track.mode, 'hidden');
});

test('a track added after attach is followed', () => {
  const video = new FakeVideo();
  const started = [];
  attach(video, { onStart: (c) => started.push(c.id) });
  const track = new FakeTrack('metadata', 'id3');
  track.addCue(hlsID3(0, 5, productCue('x', { duration_ms: 5000 })));
  video.textTracks.add(track);
  assert.equal(track.mode, 'hidden');
  video.seek(1);
  assert.deepEqual(started, ['x']);
  // Other kinds of track are left alone.
  const subs = new FakeTrack('subtitles', 'en');
  video.textTracks.add(subs);
  assert.equal(subs.mode, 'disabled');
});

test('seeking out of a cue ends it; seeking back starts it again', () => {
  const { video, track, log } = setup();
  track.addCue(hlsID3(10, 20, productCue('a', { duration_ms: 10000 })));
  video.seek(15);
  video.seek(2); // DVR: back before the cue
  video.seek(12);
  assert.deepEqual(log, ['start a', 'end a', 'start a']);
});

test('scheduled cues are announced ahead, for preloading', () => {
  const { video, track, events } = setup();
  track.addCue(hlsRange(60, 70, 'later', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(productCue('later', { duration_ms: 10000 })))));
  video.seek(1);
  assert.deepEqual(events, ['cueadded later daterange']);
});

test('detach stops the events', () => {
  const { video, track, log, ctl } = setup();
  track.addCue(hlsID3(1, 2, productCue('a', { duration_ms: 1000 })));
  ctl.detach();
  video.seek(1.5);
  assert.deepEqual(log, []);
});

test('a throwing callback does not stop the events', () => {
  const video = new FakeVideo();
  const track = new FakeTrack('metadata', 'id3');
  video.textTracks.add(track);
  const ctl = attach(video, { onStart: () => { throw new Error('app bug'); } });
  const seen = [];
  ctl.addEventListener('cuestart', (e) => seen.push(e.detail.id));
  track.addCue(hlsID3(0, 5, productCue('a', { duration_ms: 5000 })));
  const reported = [];
  const saved = globalThis.reportError;
  globalThis.reportError = (err) => reported.push(err.message);
  try {
    video.seek(1);
  } finally {
    globalThis.reportError = saved;
  }
  assert.deepEqual(seen, ['a']);
  assert.deepEqual(reported, ['app bug']);
});

test('while playing, a timer ends a cue on time without waiting for timeupdate', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const video = new FakeVideo();
    video.paused = false;
    const track = new FakeTrack('metadata', 'id3');
    track.addCue(hlsID3(0, Infinity, productCue('a', { duration_ms: 2000 })));
    video.textTracks.add(track);
    video.currentTime = 1;
    const log = [];
    attach(video, { onStart: (c) => log.push(`start ${c.id}`), onEnd: (c) => log.push(`end ${c.id}`) });
    assert.deepEqual(log, ['start a']);
    video.currentTime = 2; // playback moved on; no event yet
    mock.timers.tick(999);
    assert.deepEqual(log, ['start a']);
    mock.timers.tick(1);
    assert.deepEqual(log, ['start a', 'end a']);
  } finally {
    mock.timers.reset();
  }
});

// starts counts the cuestart events of each cue id.
const starts = (events) => events.filter((e) => e.startsWith('cuestart')).length;

test('emsg copy only: shown once, ended on duration_ms', () => {
  const { video, track, log } = setup();
  track.addCue(hlsID3(10, 15, productCue('e', { duration_ms: 5000 })));
  for (const t of [9, 10, 11, 12, 14.9]) video.seek(t);
  assert.deepEqual(log, ['start e']);
  video.seek(15);
  assert.deepEqual(log, ['start e', 'end e']);
});

test('DATERANGE copy only: shown once, ended on its end', () => {
  const { video, track, log, events } = setup();
  const json = productCue('d', { duration_ms: 5000 });
  track.addCue(hlsRange(10, 15, 'd', 'X-COM-SHOPCAST-SKU', 'SKU-d'));
  track.addCue(hlsRange(10, 15, 'd', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(json))));
  for (const t of [9, 10, 11, 14.9]) video.seek(t);
  assert.deepEqual(log, ['start d']);
  video.seek(15.1);
  assert.deepEqual(log, ['start d', 'end d']);
  assert.equal(starts(events), 1);
});

test('both copies, the in-band one arriving while the DATERANGE one is on screen: shown once', () => {
  const { video, track, log } = setup();
  const json = productCue('both', { duration_ms: 5000 });
  track.addCue(hlsRange(9.979, 14.979, 'both', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(json))));
  video.seek(9.99);
  assert.deepEqual(log, ['start both']);
  // The emsg comes with the next part and moves the start to the frame.
  track.addCue(hlsID3(10, 15, json));
  for (const t of [9.995, 10, 12]) video.seek(t);
  assert.deepEqual(log, ['start both']);
  video.seek(15);
  assert.deepEqual(log, ['start both', 'end both']);
  // A viewer who seeks back before it sees it again, once.
  video.seek(9);
  video.seek(11);
  assert.deepEqual(log, ['start both', 'end both', 'start both']);
});

test('a re-sent emsg cue (hls.js adds one cue per segment) shows once', () => {
  const { video, track, log, events } = setup();
  const json = productCue('re'); // open-ended: re-sent until deleted
  track.addCue(hlsID3(10, Infinity, json));
  video.seek(10.5);
  for (let seg = 11; seg < 20; seg++) {
    // hls.js cuts an open ID3 cue only at a later one's start; a re-send
    // has the same start, so every copy stays open, each a new cue.
    track.addCue(hlsID3(10, Infinity, json));
    video.seek(seg + 0.5);
  }
  assert.equal(track.cues.length, 10);
  assert.deepEqual(log, ['start re']);
  assert.equal(starts(events), 1);
});

// wipe does what chromium does when the empty "data:,WEBVTT" source of
// hls.js's id3 track has loaded: the track's cues are replaced by none.
const wipe = (track) => { track.cues = []; };

test('hls.js: the first cue of a session survives the wipe of its new id3 track', () => {
  const video = new FakeVideo();
  const log = [];
  attach(video, { onStart: (c) => log.push(`start ${c.id}`), onEnd: (c) => log.push(`end ${c.id}`) });
  const json = productCue('first', { duration_ms: 5000 });
  // hls.js creates the track and adds the DATERANGE and emsg copies in
  // one task; the page hears of the track after that, then it is wiped.
  const track = new FakeTrack('metadata', 'id3');
  track.mode = 'hidden';
  track.addCue(hlsRange(9.979, 14.979, 'first', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(json))));
  track.addCue(hlsID3(10, 15, json));
  video.textTracks.add(track);
  wipe(track);
  assert.equal(track.cues.length, 0);
  video.seek(9.99);
  video.seek(12);
  assert.deepEqual(log, ['start first']);
  video.seek(15);
  assert.deepEqual(log, ['start first', 'end first']);
});

test('hls.js: cues added to a known track just before it is wiped are kept', () => {
  const { video, track, log, events } = setup();
  const json = productCue('gap', { duration_ms: 5000 });
  track.addCue(hlsRange(20, 25, 'gap', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(json))));
  wipe(track); // before any timeupdate could scan it
  // Only the emsg re-sent at the next segment comes back on the track.
  video.seek(20.5);
  assert.deepEqual(log, ['start gap']);
  track.addCue(hlsID3(20, 25, json));
  video.seek(21.5);
  video.seek(25);
  assert.deepEqual(log, ['start gap', 'end gap']);
  assert.equal(starts(events), 1);
});

test('hls.js: when only a late re-send survives, the cue shows from it, once', () => {
  const { video, track, log } = setup();
  const json = productCue('late-copy', { duration_ms: 10000 });
  video.seek(30.5); // the first copies were lost before the page saw them
  assert.deepEqual(log, []);
  track.addCue(hlsID3(30, 40, json)); // the re-send at the segment after
  video.seek(31);
  video.seek(32);
  assert.deepEqual(log, ['start late-copy']);
});

test('detach gives the track its own addCue back', () => {
  const { track, ctl } = setup();
  const own = FakeTrack.prototype.addCue;
  assert.notEqual(track.addCue, own);
  ctl.detach();
  assert.equal(track.addCue, own);
  track.addCue(hlsID3(1, 2, productCue('after')));
  assert.equal(track.cues.length, 1);
});

// FakeShaka dispatches events shaped like Shaka Player 5.2's: timeline
// regions with {detail: region} and 'metadata' with the fields on the event.
class FakeShaka extends EventTarget {
  region(type, r) {
    const ev = new Event(type);
    ev.detail = { ...r, values: r.values.map((v) => ({ ...v })) }; // Shaka clones per event
    this.dispatchEvent(ev);
  }
  metadata(metadataType, startTime, endTime, payload) {
    const ev = new Event('metadata');
    Object.assign(ev, { metadataType, startTime, endTime, payload });
    this.dispatchEvent(ev);
  }
}

const shakaRegion = (id, start, end, json) => ({
  schemeIdUri: 'com.shopcast.product', value: '', id, startTime: start, endTime: end, timescale: 1,
  values: [
    { key: 'ID', description: '', data: id },
    { key: 'X-COM-SHOPCAST-SKU', description: '', data: json.product.sku },
    { key: 'X-COM-SHOPCAST-CUE', description: '', data: toHex(JSON.stringify(json)) },
  ],
});

function setupShaka() {
  const video = new FakeVideo();
  const player = new FakeShaka();
  const log = [];
  const ctl = attachShaka(player, video, {
    onStart: (c) => log.push(`start ${c.id}`),
    onEnd: (c) => log.push(`end ${c.id}`),
    onAdd: (c) => log.push(`add ${c.id}`),
  });
  return { video, player, log, ctl };
}

// Shaka's events reach the SDK ahead of the next timeupdate; the SDK
// evaluates after a microtask.
const tick = () => new Promise((r) => setTimeout(r, 0));

test('Shaka: a DATERANGE reported as region and metadata events shows once', async () => {
  const { video, player, log } = setupShaka();
  const json = productCue('sk', { duration_ms: 5000 });
  const r = shakaRegion('sk', 10, 15, json);
  video.seek(8);
  player.region('timelineregionadded', r);
  // Each playlist reload reports it again.
  player.region('timelineregionadded', r);
  await tick();
  assert.deepEqual(log, ['add sk']);
  video.seek(10);
  player.region('timelineregionenter', r);
  for (const v of r.values) player.metadata('com.shopcast.product', 10, 15, v);
  await tick();
  video.seek(12);
  assert.deepEqual(log, ['add sk', 'start sk']);
  video.seek(15);
  player.region('timelineregionexit', r);
  await tick();
  assert.deepEqual(log, ['add sk', 'start sk', 'end sk']);
});

test('Shaka: metadata events alone (attached after the region was added) show the cue once', async () => {
  const { video, player, log } = setupShaka();
  const json = productCue('m', { duration_ms: 5000 });
  video.seek(20);
  for (const v of shakaRegion('m', 20, 25, json).values) player.metadata('com.shopcast.product', 20, 25, v);
  await tick();
  assert.deepEqual(log, ['add m', 'start m']);
});

test('Shaka: an open-ended cue ends when a reload gives the region its END-DATE', async () => {
  const { video, player, log } = setupShaka();
  const json = productCue('open');
  player.region('timelineregionadded', shakaRegion('open', 5, Infinity, json));
  video.seek(6);
  await tick();
  assert.deepEqual(log, ['add open', 'start open']);
  player.region('timelineregionadded', shakaRegion('open', 5, 9, json));
  video.seek(8.9);
  assert.deepEqual(log, ['add open', 'start open']);
  video.seek(9);
  assert.deepEqual(log, ['add open', 'start open', 'end open']);
});

test('Shaka on TS: the org.id3 copy and the DATERANGE copy show once', async () => {
  const { video, player, log } = setupShaka();
  const json = productCue('ts', { duration_ms: 5000 });
  player.region('timelineregionadded', shakaRegion('ts', 9.98, 14.98, json));
  video.seek(9.99);
  await tick();
  player.metadata('org.id3', 10, 10, { key: 'TXXX', description: 'shopcast', data: JSON.stringify(json) });
  video.seek(10.5);
  await tick();
  assert.deepEqual(log, ['add ts', 'start ts']);
  video.seek(15);
  assert.deepEqual(log, ['add ts', 'start ts', 'end ts']);
});

test('Shaka: other classes and detach are ignored', async () => {
  const { video, player, log, ctl } = setupShaka();
  const json = productCue('x', { duration_ms: 5000 });
  player.region('timelineregionadded', { ...shakaRegion('x', 1, 6, json), schemeIdUri: 'com.apple.hls.interstitial' });
  video.seek(2);
  await tick();
  assert.deepEqual(log, []);
  ctl.detach();
  player.region('timelineregionadded', shakaRegion('y', 1, 6, productCue('y', { duration_ms: 5000 })));
  video.seek(3);
  await tick();
  assert.deepEqual(log, []);
});

// Moments: polls, results, deals and product updates.
const pollCue = (id, extra = {}) => ({
  v: 1, id, type: 'poll', poll: { question: 'Red or blue?', options: ['Red', 'Blue'] }, duration_ms: 5000, ...extra,
});

test('each type has its own event with cuestart; unknown types only cuestart', () => {
  const { video, track, ctl } = setup();
  const named = [];
  for (const type of ['product', 'poll', 'pollresult', 'deal', 'update']) {
    ctl.addEventListener(type, (e) => named.push(`${type} ${e.detail.id} ${e.detail.start}`));
  }
  const starts = [];
  ctl.addEventListener('cuestart', (e) => starts.push(e.detail.id));
  track.addCue(hlsID3(1, 2, productCue('p', { duration_ms: 9000 })));
  track.addCue(hlsID3(2, 3, pollCue('q')));
  track.addCue(hlsID3(7, 8, {
    v: 1, id: 'q-result', type: 'poll_result', duration_ms: 3000,
    poll_result: { poll: 'q', question: 'Red or blue?', options: ['Red', 'Blue'], counts: [2, 1] },
  }));
  track.addCue(hlsID3(3, 4, { v: 1, id: 'd', type: 'deal', duration_ms: 10000, deal: { product: productCue('d').product, price: { amount: '9.99', currency: 'EUR' } } }));
  track.addCue(hlsID3(4, 5, { v: 1, id: 'x', type: 'quiz', quiz: {}, duration_ms: 1000 }));
  track.addCue(hlsID3(5, 6, productCue('p2', { replaces: 'p' })));
  for (const t of [1.5, 2.5, 3.5, 4.5, 5.5, 7.5]) video.seek(t);
  assert.deepEqual(named, ['product p 1', 'poll q 2', 'deal d 3', 'update p2 5', 'pollresult q-result 7']);
  assert.deepEqual(starts, ['p', 'q', 'd', 'x', 'p2', 'q-result']);
});

test('a product update swaps the card: the old ends at the new start, after it, in the same task', () => {
  const { video, track, log } = setup();
  const old = productCue('old', { duration_ms: 60000 });
  const upd = productCue('new', { replaces: 'old' });
  track.addCue(hlsID3(10, 11, old));
  video.seek(11);
  assert.deepEqual(log, ['start old']);
  // The old one's DATERANGE END-DATE maps an audio frame before the new
  // in-band start: it must not leave a gap.
  track.addCue(hlsRange(10, 19.98, 'old', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(old))));
  track.addCue(hlsID3(20, 21, upd));
  video.seek(19.99);
  assert.deepEqual(log, ['start old'], 'the old card left before its replacement came');
  video.seek(20);
  assert.deepEqual(log, ['start old', 'start new', 'end old']);
  // A later DATERANGE copy of the new one, an audio frame late, does not
  // bring the old card back.
  track.addCue(hlsRange(20.02, Infinity, 'new', 'X-COM-SHOPCAST-CUE', toHex(JSON.stringify(upd))));
  video.seek(20.01);
  assert.deepEqual(log, ['start old', 'start new', 'end old']);
});

test('a replaced cue whose own end is past the replacement ends at the replacement', () => {
  const { video, track, log, ctl } = setup();
  track.addCue(hlsID3(0, 1, productCue('a', { duration_ms: 100000 })));
  track.addCue(hlsID3(5, 6, productCue('b', { replaces: 'a', duration_ms: 100000 })));
  video.seek(4);
  assert.deepEqual(ctl.times('a'), { start: 0, end: 5 });
  assert.equal(ctl.times('zz'), null);
  video.seek(5);
  assert.deepEqual(log, ['start a', 'start b', 'end a']);
  assert.deepEqual(ctl.active.map((c) => c.id), ['b']);
});

test('Shaka: a poll region (its own CLASS) shows', async () => {
  const { video, player, log } = setupShaka();
  const json = pollCue('sp');
  player.region('timelineregionadded', {
    schemeIdUri: 'com.shopcast.poll', value: '', id: 'sp', startTime: 1, endTime: 6, timescale: 1,
    values: [{ key: 'X-COM-SHOPCAST-CUE', description: '', data: toHex(JSON.stringify(json)) }],
  });
  video.seek(2);
  await tick();
  assert.deepEqual(log, ['add sp', 'start sp']);
});
