// shopcast-cues.js: product cues from a shopcast stream, for any player that
// fills video.textTracks with metadata cues (Safari natively, hls.js, and
// players built on either). No dependencies. See docs/cues.md.
//
//   import { attach } from '/sdk/shopcast-cues.js';
//   const cues = attach(video, {
//     onStart: (cue) => showProduct(cue),   // cue: the parsed cue JSON
//     onEnd: (cue) => hideProduct(cue.id),
//   });
//   cues.addEventListener('cuestart', (e) => console.log(e.detail.cue));
//
// Every cue reaches a player twice: as an ID3 TXXX frame (description
// "shopcast") from an emsg box or a TS ID3 stream, and as an EXT-X-DATERANGE
// attribute X-COM-SHOPCAST-CUE. Players turn both into metadata cues whose
// value is {key, info, data}. This module de-duplicates them by cue id and
// decides from the media time, not from each copy's own end time (hls.js
// cuts an open ID3 cue short when the next one arrives; Safari 26 leaves
// ID3 cues open forever), when a product is on screen:
//
//   start = the earliest start of an in-band (ID3) copy, which players place
//           on the exact frame; the DATERANGE copy's start only when no
//           in-band copy was seen (players that ignore emsg/ID3). A
//           DATERANGE's START-DATE is mapped through PROGRAM-DATE-TIME,
//           which players anchor at a segment's earliest sample, so it can
//           land up to an audio frame early.
//   end   = the earliest of: start + duration_ms, the END event's time,
//           the end of the DATERANGE copy (once the playlist gives one)
//
// cuestart fires when the playhead enters [start, end), cueend when it
// leaves it (the cue ended, was deleted, or the viewer seeked out of it).
// A viewer who joins while a cue is active gets cuestart at once.

export const ID3_DESCRIPTION = 'shopcast';
export const DATERANGE_KEY = 'X-COM-SHOPCAST-CUE';
export const DATERANGE_CLASS = 'com.shopcast.product';

const HEX = /^0[xX]((?:[0-9a-fA-F]{2})*)$/;

// decodeData turns a metadata cue's value.data into text: a string as is,
// a "0x..." hexadecimal-sequence (hls.js passes DATERANGE values raw) or
// binary data (ArrayBuffer or a view: Safari may pass those) as UTF-8.
export function decodeData(data) {
  let bytes = null;
  if (typeof data === 'string') {
    const m = HEX.exec(data);
    if (!m) return data;
    bytes = new Uint8Array(m[1].length / 2);
    for (let i = 0; i < bytes.length; i++) {
      bytes[i] = parseInt(m[1].substr(2 * i, 2), 16);
    }
  } else if (data instanceof ArrayBuffer) {
    bytes = new Uint8Array(data);
  } else if (ArrayBuffer.isView(data)) {
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } else {
    return null;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

// parseCarrier reads one metadata cue. It returns null for cues that are
// not shopcast's, else {source: 'id3' | 'daterange', id, end, cue}: end is
// true for an END event ({"v":1,"id":...,"end":true}), cue the parsed JSON.
export function parseCarrier(textTrackCue) {
  let value = textTrackCue && textTrackCue.value;
  if (!value && textTrackCue && typeof textTrackCue.text === 'string' &&
      textTrackCue.text.charAt(0) === '{') {
    // hls.js falls back to JSON text when a cue takes no value property.
    try { value = JSON.parse(textTrackCue.text); } catch { return null; }
  }
  if (!value || typeof value !== 'object') return null;
  let source;
  if (value.key === 'TXXX' && value.info === ID3_DESCRIPTION) {
    source = 'id3';
  } else if (value.key === DATERANGE_KEY) {
    source = 'daterange';
  } else {
    return null;
  }
  const text = decodeData(value.data);
  if (text === null) return null;
  let cue;
  try { cue = JSON.parse(text); } catch { return null; }
  // Schema v1 only; a later version is skipped, not misread.
  if (!cue || typeof cue !== 'object' || cue.v !== 1 ||
      typeof cue.id !== 'string' || cue.id === '') {
    return null;
  }
  return { source, id: cue.id, end: cue.end === true, cue };
}

function report(err) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(err);
  else if (typeof console !== 'undefined') console.error(err);
}

function isMetadata(track) {
  return track && track.kind === 'metadata';
}

// ShopcastCues follows the product cues of one video element. It dispatches
// CustomEvents whose detail is {id, cue, source}: 'cueadded' when a cue is
// first seen (possibly ahead of its start), 'cuestart' and 'cueend'.
export class ShopcastCues extends EventTarget {
  constructor(video, { onStart, onEnd, onAdd } = {}) {
    super();
    this.video = video;
    this.onStart = onStart;
    this.onEnd = onEnd;
    this.onAdd = onAdd;
    this.entries = new Map(); // id -> {cue, source, start, endAt, rangeEnd}
    this.showing = new Map(); // id -> entry, the cues on screen
    this.tracks = new Set();
    this.parsed = new WeakMap(); // metadata cue -> parseCarrier result
    this.timer = null;
    this.update = () => this.evaluate();
    this.onAddTrack = (e) => { this.hook(e.track); this.evaluate(); };
    for (const ev of ['timeupdate', 'seeked', 'seeking', 'play', 'loadeddata']) {
      video.addEventListener(ev, this.update);
    }
    const list = video.textTracks;
    if (list) {
      if (list.addEventListener) list.addEventListener('addtrack', this.onAddTrack);
      for (let i = 0; i < list.length; i++) this.hook(list[i]);
    }
    this.evaluate(); // late join: cues already active fire now
  }

  // active returns the cues on screen, in start order.
  get active() {
    return [...this.showing.values()]
      .sort((a, b) => a.start - b.start)
      .map((e) => e.cue);
  }

  hook(track) {
    if (!isMetadata(track) || this.tracks.has(track)) return;
    this.tracks.add(track);
    // Cues of a disabled track are neither loaded nor active (Safari's
    // native metadata tracks start disabled; hls.js sets 'hidden').
    if (track.mode === 'disabled') track.mode = 'hidden';
    if (track.addEventListener) track.addEventListener('cuechange', this.update);
  }

  detach() {
    for (const ev of ['timeupdate', 'seeked', 'seeking', 'play', 'loadeddata']) {
      this.video.removeEventListener(ev, this.update);
    }
    const list = this.video.textTracks;
    if (list && list.removeEventListener) list.removeEventListener('addtrack', this.onAddTrack);
    for (const t of this.tracks) {
      if (t.removeEventListener) t.removeEventListener('cuechange', this.update);
    }
    this.tracks.clear();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  // scan reads every cue of the hooked tracks. Registering a copy twice
  // changes nothing, and a DATERANGE copy's end may have been set since.
  scan() {
    for (const track of this.tracks) {
      const cues = track.cues;
      if (!cues) continue;
      for (let i = 0; i < cues.length; i++) this.register(cues[i]);
    }
  }

  register(textTrackCue) {
    // Parse each metadata cue once; its times are read every time (a
    // DATERANGE copy gets its end when the playlist does).
    let c = this.parsed.get(textTrackCue);
    if (c === undefined) {
      c = parseCarrier(textTrackCue);
      if (typeof textTrackCue === 'object' && textTrackCue !== null) this.parsed.set(textTrackCue, c);
    }
    if (!c) return;
    let e = this.entries.get(c.id);
    if (!e) {
      e = { cue: null, source: null, start: Infinity, id3Start: Infinity, rangeStart: Infinity, endAt: Infinity, rangeEnd: Infinity };
      this.entries.set(c.id, e);
    }
    const t0 = Number(textTrackCue.startTime);
    if (c.end) {
      if (Number.isFinite(t0)) e.endAt = Math.min(e.endAt, t0);
      return;
    }
    if (!e.cue) {
      e.cue = c.cue;
      e.source = c.source;
      // Scheduled cues reach the playlist ahead of their start: a player
      // can preload cue.product.image_url now.
      this.fire('cueadded', c.id, e, this.onAdd);
    }
    if (Number.isFinite(t0)) {
      if (c.source === 'id3') e.id3Start = Math.min(e.id3Start, t0);
      else e.rangeStart = Math.min(e.rangeStart, t0);
      e.start = Number.isFinite(e.id3Start) ? e.id3Start : e.rangeStart;
    }
    const t1 = Number(textTrackCue.endTime);
    // Only a DATERANGE copy's end means the cue's end: players end ID3
    // copies when the next ID3 frame arrives, or never.
    if (c.source === 'daterange' && Number.isFinite(t1) && t1 > t0) {
      e.rangeEnd = Math.min(e.rangeEnd, t1);
    }
  }

  static endOf(e) {
    let end = Math.min(e.endAt, e.rangeEnd);
    const ms = e.cue && e.cue.duration_ms;
    if (typeof ms === 'number' && ms > 0) end = Math.min(end, e.start + ms / 1000);
    return end;
  }

  evaluate() {
    this.scan();
    const t = Number(this.video.currentTime) || 0;
    let next = Infinity; // the nearest boundary ahead, for the timer
    for (const [id, e] of this.entries) {
      if (!e.cue) continue;
      const end = ShopcastCues.endOf(e);
      const on = e.start <= t && t < end;
      if (e.start > t) next = Math.min(next, e.start - t);
      else if (end > t) next = Math.min(next, end - t);
      if (on && !this.showing.has(id)) {
        this.showing.set(id, e);
        this.fire('cuestart', id, e, this.onStart);
      } else if (!on && this.showing.has(id)) {
        this.showing.delete(id);
        this.fire('cueend', id, e, this.onEnd);
      }
    }
    this.arm(next);
  }

  // arm sets a timer for the next start or end, so that cues change on time
  // rather than at the next timeupdate (every 250 ms or so).
  arm(next) {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const v = this.video;
    if (!Number.isFinite(next) || v.paused !== false || typeof setTimeout !== 'function') return;
    const rate = Number(v.playbackRate) > 0 ? Number(v.playbackRate) : 1;
    this.timer = setTimeout(() => { this.timer = null; this.evaluate(); },
      Math.max(10, (next * 1000) / rate));
  }

  fire(type, id, e, callback) {
    const detail = { id, cue: e.cue, source: e.source };
    if (typeof callback === 'function') {
      // An application error is reported, not allowed to stop the events.
      try { callback(e.cue, detail); } catch (err) { report(err); }
    }
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// attach follows the product cues of video. onStart(cue, detail),
// onEnd(cue, detail) and onAdd(cue, detail) are optional; the returned
// object also dispatches 'cuestart', 'cueend' and 'cueadded' events. Call
// detach() on it to stop.
export function attach(video, options = {}) {
  return new ShopcastCues(video, options);
}
