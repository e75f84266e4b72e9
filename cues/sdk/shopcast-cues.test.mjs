// Tests of shopcast-cues.js on synthetic text tracks shaped like the ones
// hls.js 1.7 and Safari create. Run: node --test (Go's TestSDK runs it).
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { attach, parseCarrier, decodeData } from './shopcast-cues.js';

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
