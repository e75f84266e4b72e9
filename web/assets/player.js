// player.js: plays a shopcast stream in a <video>, with hls.js in low-latency
// mode where Media Source Extensions exist, else natively (Safari, iOS), and
// a recording of one (a replay, or the growing recording of a live stream
// for "from the start"). It keeps a status line: live or ended, and the
// live latency.

// With signed play URLs on, the page is opened with the viewer's play token
// (?token=), which the multivariant playlist needs (docs/security.md).
export function playlistURL(name) {
  const token = new URLSearchParams(location.search).get('token');
  return '/live/' + encodeURIComponent(name) + '/index.m3u8' + (token ? '?token=' + encodeURIComponent(token) : '');
}

// startPlayer returns {hls, state(), latency(), stop()} and reports into
// report: {state: 'connecting'|'live'|'ended'|'error', latency:
// seconds|null, error}. stop() lets go of the video, so that another
// player can take it. liveDelay, in seconds, holds the player that far
// behind the live edge instead of at the playlist's PART-HOLD-BACK.
export function startPlayer(video, name, report, { liveDelay = 0 } = {}) {
  const src = playlistURL(name);
  const Hls = globalThis.Hls;
  let state = 'connecting';
  let stopped = false;
  const set = (s, extra) => { if (!stopped) { state = s; report(Object.assign({ state: s }, extra)); } };
  let hls = null;
  let retry = null;

  if (Hls && Hls.isSupported()) {
    hls = new Hls({
      // Stock low-latency mode: the target latency is the playlist's
      // PART-HOLD-BACK (3 parts, 1 s at the default 333 ms part target),
      // and hls.js plays up to maxLiveSyncPlaybackRate to get back to it.
      lowLatencyMode: true,
      maxLiveSyncPlaybackRate: 1.25,
      // hls.js adds this to the target latency after every stall, up to
      // one target duration, and never takes it back: with its default of
      // 1 s two stalls (a publisher that hiccups) put a viewer 3 s behind
      // for good. A fifth of a second per stall keeps it near the edge.
      liveSyncOnStallIncrease: 0.2,
      backBufferLength: 30,
      // Cues come as ID3 in emsg and as DATERANGE: both on the 'id3' track.
      enableEmsgMetadataCues: true,
      enableDateRangeMetadataCues: true,
      enableID3MetadataCues: true,
      // hls.js takes a maximum latency only with a fixed target; it jumps
      // back to the target beyond it.
      ...(liveDelay > 0 ? { liveSyncDuration: liveDelay, liveMaxLatencyDuration: liveDelay + 3 } : {}),
      ...steeringOptions(Hls),
    });
    hls.on(Hls.Events.LEVEL_UPDATED, (_, data) => {
      const d = data.details;
      if (d && d.live && hls.config.liveMaxLatencyDuration === undefined) {
        // Without a maximum latency hls.js never jumps back to the live
        // edge: it only speeds up while within one target duration of its
        // target, so after a long stall a viewer stays far behind (and
        // sees each product long after the host showed it). Jump once the
        // playhead is a target duration behind the target. The value
        // depends on the playlist (PART-HOLD-BACK, TARGETDURATION), so it
        // is set here rather than in the constructor, where hls.js would
        // also demand a fixed liveSyncDuration that overrides
        // PART-HOLD-BACK.
        hls.config.liveMaxLatencyDuration = (d.partHoldBack || d.holdBack || 3 * d.targetduration) + d.targetduration;
      }
      if (d && d.live === false) set('ended');
      else if (state !== 'ended') set('live');
    });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      const code = data.response && data.response.code;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        report({ state, error: data });
        hls.recoverMediaError();
        return;
      }
      // A playlist that is gone means the stream ended (or never began).
      if (code === 404 || code === 410) {
        set('ended', { error: data });
      } else {
        set('error', { error: data });
      }
      retry = setTimeout(() => hls.startLoad(-1), 3000); // the publisher may come back
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  }
  const stopGuard = hls ? switchDownInTime(hls, video) : () => {};
  const native = hls ? null : playNatively(video, src, { loadedmetadata: () => set('live'), ended: () => set('ended'), error: () => set('error', { error: video.error }) });
  if (!hls && !native) {
    set('error', { error: new Error('this browser plays neither HLS nor Media Source Extensions') });
  }

  const latency = () => {
    if (hls) return Number.isFinite(hls.latency) ? hls.latency : null;
    const s = video.seekable;
    return s && s.length ? s.end(s.length - 1) - video.currentTime : null;
  };
  const timer = setInterval(() => report({ state, latency: latency() }), 500);
  const stopVideo = followVideo(video);
  const stop = () => {
    stopped = true;
    clearInterval(timer);
    clearTimeout(retry);
    stopGuard();
    stopVideo();
    if (hls) hls.destroy();
    if (native) native();
  };
  return { hls, state: () => state, latency, stop };
}

// steeringOptions are hls.js's options for a stream with content steering
// pathways (docs/steering.md), on the hls.js build that has the steering
// controller (the watch page loads it when the server has pathways). A
// load error on the pathway being played is retried once at once, then
// hls.js penalises the pathway and moves to the next one of the steering
// manifest's PATHWAY-PRIORITY: an origin that died (connection refused)
// is left within a part, long before the next manifest reload would rank
// it last. Without steering every retry is kept: there is nowhere else
// to go.
function steeringOptions(Hls) {
  if (!Hls.DefaultConfig || !Hls.DefaultConfig.contentSteeringController) return {};
  const once = (policy) => ({
    default: Object.assign({}, policy.default, {
      errorRetry: { maxNumRetry: 1, retryDelayMs: 0, maxRetryDelayMs: 0 },
    }),
  });
  return {
    playlistLoadPolicy: once(Hls.DefaultConfig.playlistLoadPolicy),
    fragLoadPolicy: once(Hls.DefaultConfig.fragLoadPolicy),
  };
}

// switchDownInTime is an emergency rule for hls.js's automatic level
// choice, for a viewer whose network slows down suddenly (a phone leaving
// Wi-Fi). At LL-HLS latency the buffer ahead is about a second, a part of
// the top rendition (2.5-6 Mbit/s, a third of a second) takes a second or
// more at 800 kbit/s, and hls.js's bandwidth estimate is still that of the
// fast network until the part is in. hls.js's own abandon rule
// (_abandonRulesCheck) waits longer, gives up a part only when the rest
// would take twice a lower rendition's part, and never aborts for the
// lowest: the video stalls for seconds. Every 100 ms this rule measures
// the part in flight (bytes since its first byte); when its rest would not
// arrive before the buffer ahead runs out, it aborts it, tells hls.js the
// measured bandwidth, and loads the best rendition whose part fits in the
// buffer left (the lowest if none does). Only in Auto: a level chosen in
// the quality menu is left alone.
//
// After such a switch hls.js would climb back at once: the low rendition's
// small parts come in quickly and over-estimate a slow network (900 kbit/s
// measured on an 800 kbit/s link), its default abrBandWidthUpFactor (0.7)
// lets it climb to a rendition the network cannot carry, and a climb costs
// more than a part (hls.js joins the higher rendition at an independent
// part, loading again what it has). So until a part comes in at twice the
// top rendition's bit rate (a fast network again), it climbs only at twice
// a rendition's bit rate. It returns the function that stops the rule.
function switchDownInTime(hls, video) {
  const H = globalThis.Hls;
  const margin = 0.3; // s of buffer kept for the playlist reload a switch needs
  const upFactor = hls.config.abrBandWidthUpFactor;
  let load = null;
  hls.on(H.Events.FRAG_LOADING, (_, d) => { load = d.frag.type === 'main' ? d : null; });
  hls.on(H.Events.FRAG_LOADED, (_, d) => {
    const s = (d.part || d.frag).stats;
    const top = hls.levels[hls.levels.length - 1];
    const secs = (s.loading.end - s.loading.first) / 1000;
    if (top && secs > 0 && (s.loaded * 8) / secs > 2 * top.bitrate) hls.config.abrBandWidthUpFactor = upFactor;
  });
  const check = () => {
    if (!load || !hls.autoLevelEnabled || video.paused) return;
    const { frag, part } = load;
    const s = (part || frag).stats;
    const levels = hls.levels;
    if (s.aborted || (s.total && s.loaded >= s.total) || !s.loading.first || !s.loaded ||
        frag.level <= hls.minAutoLevel || !levels[frag.level]) {
      return;
    }
    const streaming = (performance.now() - s.loading.first) / 1000;
    if (streaming < 0.1) return; // too soon to tell a rate
    const rate = (s.loaded * 8) / streaming; // bit/s
    const dur = (part || frag).duration;
    const size = Math.max(s.total || 0, (dur * levels[frag.level].bitrate) / 8);
    const b = video.buffered;
    const ahead = b.length ? b.end(b.length - 1) - video.currentTime : 0;
    if (((size - s.loaded) * 8) / rate < ahead - margin) return; // it arrives in time
    // hls.js joins another rendition at an independent part: the last one
    // at or before the part holding the buffer's end (at a segment's start
    // that is the previous segment's, as the buffered audio ends a frame
    // short of the part's end), so the parts from there are loaded again
    // in the new rendition: count them.
    let parts = 1;
    const list = part && levels[frag.level].details ? levels[frag.level].details.partList || [] : [];
    const bi = hls.mainForwardBufferInfo;
    const end = bi ? bi.end : video.currentTime;
    const at = list.findIndex((p) => p.fragment.sn === frag.sn && p.index === part.index);
    let from = at;
    while (from > 0 && list[from].start > end) from--;
    while (from > 0 && !list[from].independent && list[from - 1].fragment.sn === list[from].fragment.sn) from--;
    if (at >= 0) parts = at - from + 1;
    let to = hls.minAutoLevel;
    for (let i = frag.level - 1; i > hls.minAutoLevel; i--) {
      if ((parts * dur * levels[i].bitrate) / (0.8 * rate) < ahead - margin) { to = i; break; }
    }
    load = null;
    hls.config.abrBandWidthUpFactor = upFactor / 1.4;
    hls.bandwidthEstimate = rate;
    hls.nextLoadLevel = hls.nextAutoLevel = to;
    frag.abortRequests();
    hls.trigger(H.Events.FRAG_LOAD_EMERGENCY_ABORTED, { frag, part: part || null, stats: s });
  };
  const timer = setInterval(check, 100);
  return () => clearInterval(timer);
}

// startRecording plays a recording's multivariant playlist (src) from
// startPosition seconds (0, the start, by default): a replay (VOD), or the
// recording of a stream still live (an EVENT playlist, which players would
// otherwise start at its end). It reports {state: 'connecting'|'playing'|
// 'ended'|'error', error} and returns {hls, stop()}.
export function startRecording(video, src, report, { startPosition = 0 } = {}) {
  const Hls = globalThis.Hls;
  let stopped = false;
  const set = (s, extra) => { if (!stopped) report(Object.assign({ state: s }, extra)); };
  let hls = null;
  if (Hls && Hls.isSupported()) {
    hls = new Hls({
      // Not low-latency: a recording has whole segments only, and a
      // viewer who went back in time must not be pulled to the end.
      lowLatencyMode: false,
      startPosition,
      backBufferLength: 60,
      enableEmsgMetadataCues: true,
      enableDateRangeMetadataCues: true,
      enableID3MetadataCues: true,
    });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        report({ error: data });
        hls.recoverMediaError();
        return;
      }
      set('error', { error: data });
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  }
  const events = {
    loadedmetadata: () => {
      // A browser's own HLS starts an EVENT playlist near its end.
      if (!hls) video.currentTime = startPosition;
      set('playing');
    },
    ended: () => set('ended'),
    error: () => { if (!hls) set('error', { error: video.error }); },
  };
  const native = hls ? null : playNatively(video, src, events);
  if (!hls && !native) {
    set('error', { error: new Error('this browser plays neither HLS nor Media Source Extensions') });
  }
  if (hls) {
    video.addEventListener('loadedmetadata', events.loadedmetadata);
    video.addEventListener('ended', events.ended);
  }
  set('connecting');
  const stopVideo = followVideo(video);
  const stop = () => {
    stopped = true;
    stopVideo();
    if (hls) {
      video.removeEventListener('loadedmetadata', events.loadedmetadata);
      video.removeEventListener('ended', events.ended);
      hls.destroy();
    }
    if (native) native();
  };
  return { hls, stop };
}

// playNatively plays src with the browser's own HLS (Safari, iOS), calling
// the handlers of events on the video; it returns the function that stops
// it, or null when the browser has no HLS of its own.
function playNatively(video, src, events) {
  if (!video.canPlayType('application/vnd.apple.mpegurl')) return null;
  for (const [ev, f] of Object.entries(events)) video.addEventListener(ev, f);
  video.src = src;
  return () => {
    for (const [ev, f] of Object.entries(events)) video.removeEventListener(ev, f);
    video.removeAttribute('src');
    video.load();
  };
}

// followVideo shapes the video box and starts playback once it can; it
// returns the function that stops doing so.
function followVideo(video) {

  // The page's CSS sizes the video box by the stream's shape (--video-ratio),
  // so that no viewport crops it.
  const shape = () => {
    if (video.videoWidth && video.videoHeight) {
      video.style.setProperty('--video-ratio', video.videoWidth + ' / ' + video.videoHeight);
    }
  };
  video.addEventListener('loadedmetadata', shape);
  video.addEventListener('resize', shape);

  const tryPlay = () => { video.play().catch(() => { /* autoplay refused: controls remain */ }); };
  video.addEventListener('canplay', tryPlay, { once: true });
  return () => {
    video.removeEventListener('loadedmetadata', shape);
    video.removeEventListener('resize', shape);
    video.removeEventListener('canplay', tryPlay);
  };
}

// statusReporter writes reports into the page's #state and #latency;
// more maps further states to their labels.
export function statusReporter(doc, more = {}) {
  const stateEl = doc.getElementById('state');
  const latEl = doc.getElementById('latency');
  const labels = Object.assign({ connecting: 'Connecting…', live: '● Live', ended: 'Stream ended', error: 'Playback problem, retrying…' }, more);
  return (r) => {
    if (r.state && stateEl.dataset.state !== r.state) {
      stateEl.dataset.state = r.state;
      stateEl.textContent = labels[r.state] || r.state;
    }
    if ('latency' in r) {
      latEl.textContent = r.latency == null || r.state === 'ended' ? '' : 'latency ' + r.latency.toFixed(1) + ' s';
    }
  };
}

// formatPrice formats a cue's {amount, currency} for the viewer's locale.
export function formatPrice(price, locale) {
  try {
    return new Intl.NumberFormat(locale || undefined, { style: 'currency', currency: price.currency })
      .format(Number(price.amount));
  } catch {
    return price.amount + ' ' + price.currency;
  }
}

// productCard is a carousel card for a product cue: picture, title, price,
// badges and a Buy link.
export function productCard(cue) {
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

// formatClock writes seconds as m:ss (h:mm:ss from an hour).
export function formatClock(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? h + ':' + String(m).padStart(2, '0') + ':' + ss : m + ':' + ss;
}

// qualityMenu puts a "Quality" select into parent for an hls.js instance:
// Auto (hls.js's bandwidth estimate picks the rendition, the choice shown
// beside it) and one entry per rendition of the multivariant playlist, by
// picture height. A native <select> with a label: keyboard and screen
// readers work as everywhere. Choosing one switches at the next part
// (nextLevel), without flushing the buffer. It returns a function that
// removes the menu. With one rendition, or without hls.js, there is none.
export function qualityMenu(hls, parent) {
  const doc = parent.ownerDocument;
  const label = doc.createElement('label');
  label.className = 'quality';
  label.hidden = true;
  label.append('Quality ');
  const select = doc.createElement('select');
  select.id = 'quality';
  label.append(select);
  parent.append(label);
  if (!hls) return () => label.remove();
  const H = globalThis.Hls;
  const name = (l) => (l.height ? l.height + 'p' : Math.round(l.bitrate / 1000) + ' kbit/s');
  const fill = () => {
    select.replaceChildren();
    const auto = new Option('Auto', '-1');
    select.add(auto);
    // hls.js orders its levels by bit rate, lowest first: the menu lists
    // the best picture first.
    hls.levels.map((l, i) => [l, i]).sort((a, b) => (b[0].height - a[0].height) || (b[0].bitrate - a[0].bitrate))
      .forEach(([l, i]) => select.add(new Option(name(l), String(i))));
    select.value = String(hls.autoLevelEnabled ? -1 : hls.nextLevel);
    label.hidden = hls.levels.length < 2;
  };
  const shown = () => {
    const l = hls.levels[hls.currentLevel];
    select.options[0].text = hls.autoLevelEnabled && l ? 'Auto (' + name(l) + ')' : 'Auto';
  };
  hls.on(H.Events.MANIFEST_PARSED, fill);
  hls.on(H.Events.LEVELS_UPDATED, fill);
  hls.on(H.Events.LEVEL_SWITCHED, shown);
  select.addEventListener('change', () => { hls.nextLevel = Number(select.value); shown(); });
  if (hls.levels && hls.levels.length) fill();
  return () => label.remove();
}
