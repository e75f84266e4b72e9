// player.js: plays a shopcast stream in a <video>, with hls.js in low-latency
// mode where Media Source Extensions exist, else natively (Safari, iOS).
// It keeps a status line: live or ended, and the live latency.

export function playlistURL(name) {
  return '/live/' + encodeURIComponent(name) + '/index.m3u8';
}

// startPlayer returns {hls, state()} and reports into report:
// {state: 'connecting'|'live'|'ended'|'error', latency: seconds|null, error}.
export function startPlayer(video, name, report) {
  const src = playlistURL(name);
  const Hls = globalThis.Hls;
  let state = 'connecting';
  const set = (s, extra) => { state = s; report(Object.assign({ state: s }, extra)); };
  let hls = null;

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
      setTimeout(() => hls.startLoad(-1), 3000); // the publisher may come back
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = src;
    video.addEventListener('loadedmetadata', () => set('live'));
    video.addEventListener('ended', () => set('ended'));
    video.addEventListener('error', () => set('error', { error: video.error }));
  } else {
    set('error', { error: new Error('this browser plays neither HLS nor Media Source Extensions') });
  }

  const latency = () => {
    if (hls) return Number.isFinite(hls.latency) ? hls.latency : null;
    const s = video.seekable;
    return s && s.length ? s.end(s.length - 1) - video.currentTime : null;
  };
  setInterval(() => report({ state, latency: latency() }), 500);

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
  return { hls, state: () => state, latency };
}

// statusReporter writes reports into the page's #state and #latency.
export function statusReporter(doc) {
  const stateEl = doc.getElementById('state');
  const latEl = doc.getElementById('latency');
  const labels = { connecting: 'Connecting…', live: '● Live', ended: 'Stream ended', error: 'Playback problem, retrying…' };
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
