// shopcast-cues.js: product cues from a shopcast stream, for any player that
// fills video.textTracks with metadata cues (Safari natively, hls.js, and
// players built on either), and for Shaka Player through its events. No
// dependencies. See docs/cues.md.
//
//   import { attach, attachShaka } from '/sdk/shopcast-cues.js';
//   const cues = attach(video, {            // before hls.attachMedia(video)
//     onStart: (cue) => showProduct(cue),   // cue: the parsed cue JSON
//     onEnd: (cue) => hideProduct(cue.id),
//   });
//   // Shaka: attachShaka(player, video, {onStart, onEnd}) before player.load().
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
// With cuestart comes an event named for the cue's type: 'product', 'poll',
// 'pollresult', 'deal', and 'update' for a product or deal that replaces
// another (cue.replaces). A replaced cue ends where its replacement starts,
// and its cueend comes after the replacement's cuestart, in the same task:
// a page swaps the card in place, never showing both or neither. Types this
// module does not know still get cuestart and cueend; pages skip them.
// A viewer who joins while a cue is active gets cuestart at once. Any one
// copy of a cue is enough: players lose some (see hook and attachShaka).

export const ID3_DESCRIPTION = 'shopcast';
export const DATERANGE_KEY = 'X-COM-SHOPCAST-CUE';
export const DATERANGE_CLASS = 'com.shopcast.product';
// Every type's DATERANGE CLASS starts so: com.shopcast.product,
// com.shopcast.poll, com.shopcast.poll-result, com.shopcast.deal.
export const DATERANGE_CLASS_PREFIX = 'com.shopcast.';

// typeEvent names the event that comes with cuestart for cue.
export function typeEvent(cue) {
  if (!cue || typeof cue.type !== 'string') return null;
  if ((cue.type === 'product' || cue.type === 'deal') && typeof cue.replaces === 'string' && cue.replaces) return 'update';
  switch (cue.type) {
    case 'product': return 'product';
    case 'poll': return 'poll';
    case 'poll_result': return 'pollresult';
    case 'deal': return 'deal';
    default: return null;
  }
}

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
    this.entries = new Map(); // id -> {cue, source, start, endAt, ranges, ...}
    this.replacedBy = new Map(); // id -> the entry of the cue that replaces it
    this.showing = new Map(); // id -> entry, the cues on screen
    this.tracks = new Set();
    this.parsed = new WeakMap(); // metadata cue -> parseCarrier result
    this.timer = null;
    this.pending = false; // an evaluate is queued (soon)
    this.detached = false;
    this.wrapped = new Map(); // track -> its own addCue, replaced by hook
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
    // hls.js (1.7) creates its id3 track as a <track src="data:,WEBVTT">
    // child of the video and adds cues to it at once; when chromium has
    // loaded that empty source, a task or two later, it replaces the
    // track's cues with the file's (none). 'addtrack' may come after that,
    // and cues added in between are lost to a scan. A MutationObserver
    // runs before the next task, so hook sees the track while its first
    // cues are still on it and catches later ones as they are added.
    this.observer = null;
    if (typeof MutationObserver === 'function' && video.nodeType === 1) {
      this.observer = new MutationObserver((records) => {
        for (const r of records) {
          for (const n of r.addedNodes) if (n.nodeName === 'TRACK' && n.track) this.hook(n.track);
        }
        this.evaluate();
      });
      this.observer.observe(video, { childList: true });
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
    this.scanTrack(track);
    // Every cue is read as it is added, so that a track whose cues are
    // replaced later (above) or that a player prunes still gave us them;
    // a scan alone reads only what is there at each timeupdate.
    if (typeof track.addCue === 'function') {
      const own = track.addCue;
      const self = this;
      const wrapper = function addCue(cue) {
        const r = own.apply(this, arguments);
        try { self.register(cue); self.soon(); } catch (err) { report(err); }
        return r;
      };
      try {
        track.addCue = wrapper;
        if (track.addCue === wrapper) this.wrapped.set(track, { own, wrapper });
      } catch { /* a frozen track: the scans still read it */ }
    }
  }

  // soon evaluates once the current task's additions are all registered.
  soon() {
    if (this.pending) return;
    this.pending = true;
    const run = () => { this.pending = false; this.evaluate(); };
    if (typeof queueMicrotask === 'function') queueMicrotask(run);
    else Promise.resolve().then(run);
  }

  // add registers a copy that reached the page other than as a cue on a
  // text track (attachShaka): {startTime, endTime, value: {key, info, data}}.
  add(copy) {
    this.register(copy);
    this.soon();
  }

  detach() {
    for (const ev of ['timeupdate', 'seeked', 'seeking', 'play', 'loadeddata']) {
      this.video.removeEventListener(ev, this.update);
    }
    const list = this.video.textTracks;
    if (list && list.removeEventListener) list.removeEventListener('addtrack', this.onAddTrack);
    if (this.observer) this.observer.disconnect();
    for (const t of this.tracks) {
      if (t.removeEventListener) t.removeEventListener('cuechange', this.update);
    }
    // Our wrapper comes off only if nothing wrapped it since; otherwise it
    // stays, passing cues through to the track's own addCue.
    for (const [t, { own, wrapper }] of this.wrapped) {
      if (t.addCue === wrapper) {
        try { t.addCue = own; } catch { /* frozen */ }
      }
    }
    this.wrapped.clear();
    this.tracks.clear();
    this.detached = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  // scan reads every cue of the hooked tracks. Registering a copy twice
  // changes nothing, and a DATERANGE copy's end may have been set since.
  scan() {
    for (const track of this.tracks) this.scanTrack(track);
  }

  scanTrack(track) {
    const cues = track.cues;
    if (!cues) return;
    for (let i = 0; i < cues.length; i++) this.register(cues[i]);
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
      // ranges: the DATERANGE copies, whose end the player may set later
      // (a cue without an END-DATE has an open end until it gets one).
      e = { cue: null, source: null, start: Infinity, id3Start: Infinity, rangeStart: Infinity, endAt: Infinity, ranges: new Set(), shownFrom: null };
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
      if (typeEvent(c.cue) === 'update') this.replacedBy.set(c.cue.replaces, e);
      // Scheduled cues reach the playlist ahead of their start: a player
      // can preload cue.product.image_url now.
      this.fire('cueadded', c.id, e, this.onAdd);
    }
    if (Number.isFinite(t0)) {
      if (c.source === 'id3') e.id3Start = Math.min(e.id3Start, t0);
      else e.rangeStart = Math.min(e.rangeStart, t0);
      e.start = Number.isFinite(e.id3Start) ? e.id3Start : e.rangeStart;
    }
    // Only a DATERANGE copy's end means the cue's end: players end ID3
    // copies when the next ID3 frame arrives, or never.
    if (c.source === 'daterange') e.ranges.add(textTrackCue);
  }

  // endOf is where entry e leaves the screen, on the video's timeline: a
  // replaced cue at its replacement's start, whatever its own end says (the
  // server ends it there, but its DATERANGE copy can map an audio frame
  // away from the replacement's in-band start).
  endOf(e) {
    const by = e.cue && this.replacedBy.get(e.cue.id);
    // From where the replacement is on screen, which a later copy moving
    // its start does not change (evaluate): the old card must not return.
    const from = by ? Math.min(by.start, by.shownFrom === null ? Infinity : by.shownFrom) : Infinity;
    if (Number.isFinite(from)) return from;
    return ShopcastCues.endOf(e);
  }

  // times returns where cue id starts and ends on the video's timeline, in
  // seconds (end Infinity while unknown), or null for a cue not seen.
  times(id) {
    const e = this.entries.get(id);
    if (!e || !e.cue) return null;
    return { start: e.start, end: this.endOf(e) };
  }

  static endOf(e) {
    let end = e.endAt;
    for (const r of e.ranges) {
      const t0 = Number(r.startTime);
      const t1 = Number(r.endTime);
      if (Number.isFinite(t1) && t1 > t0) end = Math.min(end, t1);
    }
    const ms = e.cue && e.cue.duration_ms;
    if (typeof ms === 'number' && ms > 0) end = Math.min(end, e.start + ms / 1000);
    return end;
  }

  evaluate() {
    if (this.detached) return;
    this.scan();
    const t = Number(this.video.currentTime) || 0;
    let next = Infinity; // the nearest boundary ahead, for the timer
    const replacedEnds = []; // fired after the starts of their replacements
    for (const [id, e] of this.entries) {
      if (!e.cue) continue;
      const end = this.endOf(e);
      const shown = this.showing.has(id);
      // A cue on screen stays there when a later copy moves its start
      // forward (the in-band copy, an audio frame after the DATERANGE
      // one): it ends on its end, or when the viewer seeks back before
      // where it was shown from.
      const from = shown ? Math.min(e.start, e.shownFrom) : e.start;
      const on = from <= t && t < end;
      if (from > t) next = Math.min(next, from - t);
      else if (end > t) next = Math.min(next, end - t);
      if (on && !shown) {
        e.shownFrom = e.start;
        this.showing.set(id, e);
        this.fire('cuestart', id, e, this.onStart);
      } else if (!on && shown) {
        this.showing.delete(id);
        if (this.replacedBy.has(id)) replacedEnds.push([id, e]);
        else this.fire('cueend', id, e, this.onEnd);
      }
    }
    for (const [id, e] of replacedEnds) this.fire('cueend', id, e, this.onEnd);
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

  // fire calls callback and dispatches type, with the detail {id, cue,
  // source, start, end} (times on the video's timeline, in seconds); a
  // cuestart is followed by the event of the cue's type.
  fire(type, id, e, callback) {
    const detail = { id, cue: e.cue, source: e.source, start: e.start, end: this.endOf(e) };
    if (typeof callback === 'function') {
      // An application error is reported, not allowed to stop the events.
      try { callback(e.cue, detail); } catch (err) { report(err); }
    }
    this.dispatchEvent(new CustomEvent(type, { detail }));
    const named = type === 'cuestart' && typeEvent(e.cue);
    if (named) this.dispatchEvent(new CustomEvent(named, { detail }));
  }
}

// attach follows the product cues of video. onStart(cue, detail),
// onEnd(cue, detail) and onAdd(cue, detail) are optional; the returned
// object also dispatches 'cuestart', 'cueend' and 'cueadded' events. Call
// detach() on it to stop.
export function attach(video, options = {}) {
  return new ShopcastCues(video, options);
}

// The copies Shaka Player reports as events rather than as text-track cues.
// Shaka 5.2 reports EXT-X-DATERANGE as timeline regions (schemeIdUri the
// CLASS, values one {key, data} per attribute, 'timelineregionadded' as
// soon as a playlist lists it) and as 'metadata' events (metadataType the
// CLASS, one per attribute, when the playhead enters it), and TS ID3 as
// 'metadata' of type 'org.id3'. It reports no ID3 from fMP4 emsg boxes on
// HLS: on the LL-HLS playlist the DATERANGE copy is the only one.
const SHAKA_EVENTS = ['timelineregionadded', 'timelineregionenter', 'timelineregionexit', 'metadata'];

// attachShaka follows the product cues of a Shaka Player playing into
// video, as attach does for text tracks (and it reads those too). Call it
// before player.load(), so that the regions of the first playlist are seen.
export function attachShaka(player, video, options = {}) {
  const ctl = new ShopcastCues(video, options);
  // One copy per distinct region: Shaka reports the same region on each
  // of its events, and a new one when a playlist reload changes its end.
  const copies = new Map();
  const copy = (key, startTime, endTime, value) => {
    let c = copies.get(key);
    if (!c) {
      c = { startTime, endTime: endTime == null ? Infinity : endTime, value };
      copies.set(key, c);
      ctl.add(c);
    }
  };
  const onEvent = (ev) => {
    try {
      if (ev.type === 'metadata') {
        const p = ev.payload;
        if (!p) return;
        const value = { key: p.key, info: p.description, data: p.data };
        copy(`m ${ev.metadataType} ${ev.startTime} ${ev.endTime} ${p.key} ${p.data}`,
          ev.startTime, ev.endTime, value);
        return;
      }
      const r = ev.detail;
      if (!r || typeof r.schemeIdUri !== 'string' || !r.schemeIdUri.startsWith(DATERANGE_CLASS_PREFIX) ||
          !Array.isArray(r.values)) return;
      for (const v of r.values) {
        if (v && v.key === DATERANGE_KEY) {
          copy(`r ${r.id} ${r.startTime} ${r.endTime}`, r.startTime, r.endTime, { key: v.key, data: v.data });
        }
      }
    } catch (err) {
      report(err);
    }
  };
  for (const type of SHAKA_EVENTS) player.addEventListener(type, onEvent);
  const detach = ctl.detach.bind(ctl);
  ctl.detach = () => {
    for (const type of SHAKA_EVENTS) player.removeEventListener(type, onEvent);
    copies.clear();
    detach();
  };
  return ctl;
}
