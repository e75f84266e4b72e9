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
      lowLatencyMode: true,
      // Catch up to the target latency by playing up to 1.25x after a stall.
      maxLiveSyncPlaybackRate: 1.25,
      backBufferLength: 30,
      // Cues come as ID3 in emsg and as DATERANGE: both on the 'id3' track.
      enableEmsgMetadataCues: true,
      enableDateRangeMetadataCues: true,
      enableID3MetadataCues: true,
    });
    hls.on(Hls.Events.LEVEL_UPDATED, (_, data) => {
      if (data.details && data.details.live === false) set('ended');
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
