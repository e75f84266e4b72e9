// moments.js: the watch page's live moments, from the stream's own cues:
// polls (a question with buttons), poll results, flash deals counting down
// and product updates swapping a card in place. Every moment is timed by
// the video's own clock (currentTime on the player's timeline, onto which
// the cue SDK maps the emsg and DATERANGE times), never by the wall clock:
// a viewer further behind live sees the same moment at the same picture.
//
// The page tells whoever listens what the viewer did, as DOM events on
// document (the audience beacons send them on):
//   shopcast:impression {stream, cue}          a card was shown
//   shopcast:click      {stream, cue, sku}     Buy on a product or deal
//   shopcast:vote       {stream, poll, option} a poll option (0-based)
import { formatPrice, formatClock } from './player.js';

// How long a closed poll waits for its result, and how long an ended deal
// says so, before its card goes (seconds of video).
const RESULT_WAIT = 5;
const DEAL_OVER = 2;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function signal(type, detail) {
  document.dispatchEvent(new CustomEvent('shopcast:' + type, { detail }));
}

// createMoments renders the moments of one stream into carousel. record is
// the page's test-and-console object: its `moments` list gets one entry per
// moment shown ({id, type, start, end, shownAt, zeroAt, counts}).
export function createMoments({ stream, video, carousel, sdk, record }) {
  record.moments = record.moments || [];
  const countdowns = new Map(); // deal cue id -> {el, entry, card}
  const lingering = new Map(); // cue id -> {card, until}: closed polls, ended deals
  let frame = null;
  let timer = null;

  const find = (id) => carousel.querySelector('[data-cue-id="' + CSS.escape(id) + '"]');

  carousel.addEventListener('click', (e) => {
    const buy = e.target.closest && e.target.closest('a.buy');
    const card = buy && buy.closest('[data-cue-id]');
    if (card) signal('click', { stream, cue: card.dataset.cueId, sku: card.dataset.sku || '' });
  });

  function note(cue, detail, extra) {
    const entry = Object.assign({
      id: cue.id, type: cue.type, replaces: cue.replaces || null,
      start: detail ? detail.start : null, end: detail ? detail.end : null,
      shownAt: video.currentTime, zeroAt: null,
    }, extra);
    record.moments.push(entry);
    if (record.moments.length > 200) record.moments.splice(0, record.moments.length - 200);
    return entry;
  }

  // insert shows card for cue: in place of the card of the cue it replaces
  // (one DOM change, so there is no moment with both cards or neither),
  // else first in the carousel.
  function insert(card, cue, old) {
    const prev = old || (cue.replaces && find(cue.replaces));
    if (prev) {
      card.classList.add('swapped'); // no entrance animation: it is the same card, updated
      lingering.delete(prev.dataset.cueId);
      countdowns.delete(prev.dataset.cueId);
      prev.replaceWith(card);
    } else {
      carousel.prepend(card);
    }
    signal('impression', { stream, cue: cue.id });
  }

  function pollCard(cue) {
    const p = cue.poll;
    const li = el('li', 'card moment poll');
    li.dataset.cueId = cue.id;
    li.dataset.poll = cue.id;
    const body = el('div', 'moment-body');
    const kicker = el('p', 'kicker', 'Poll');
    const q = el('h3', null, p.question);
    q.id = 'poll-' + cue.id;
    const group = el('div', 'options');
    group.setAttribute('role', 'group');
    group.setAttribute('aria-labelledby', q.id);
    p.options.forEach((text, i) => {
      const b = el('button', 'option', text);
      b.type = 'button';
      b.dataset.option = String(i);
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => {
        if (li.dataset.voted || li.dataset.closed) return;
        li.dataset.voted = String(i);
        b.setAttribute('aria-pressed', 'true');
        for (const o of group.querySelectorAll('button')) o.disabled = true;
        thanks.textContent = 'Thanks for voting';
        signal('vote', { stream, poll: cue.id, option: i });
      });
      group.append(b);
    });
    const thanks = el('p', 'thanks');
    thanks.setAttribute('role', 'status');
    body.append(kicker, q, group, thanks);
    li.append(body);
    return li;
  }

  function resultCard(cue) {
    const r = cue.poll_result;
    const li = el('li', 'card moment poll-result');
    li.dataset.cueId = cue.id;
    li.dataset.poll = r.poll;
    li.dataset.counts = r.counts.join(',');
    const total = r.counts.reduce((a, b) => a + b, 0);
    const body = el('div', 'moment-body');
    body.append(el('p', 'kicker', 'Poll result'), el('h3', null, r.question));
    const list = el('ul', 'results');
    r.options.forEach((text, i) => {
      const n = r.counts[i] || 0;
      const pct = total ? Math.round((100 * n) / total) : 0;
      const item = el('li', 'result');
      item.dataset.option = String(i);
      item.dataset.count = String(n);
      const label = el('span', 'label', text);
      const bar = el('span', 'bar');
      bar.style.setProperty('--share', pct + '%');
      const count = el('span', 'count', n + (n === 1 ? ' vote' : ' votes') + ' · ' + pct + '%');
      item.append(label, bar, count);
      list.append(item);
    });
    body.append(list, el('p', 'total', total + (total === 1 ? ' vote' : ' votes')));
    li.append(body);
    return li;
  }

  function dealCard(cue) {
    const d = cue.deal;
    const p = d.product;
    const li = el('li', 'card moment deal');
    li.dataset.cueId = cue.id;
    li.dataset.sku = p.sku;
    const img = el('img');
    img.src = p.image_url;
    img.alt = p.title;
    img.width = 96;
    img.height = 96;
    const body = el('div', 'moment-body');
    const kicker = el('p', 'kicker', 'Flash deal · ');
    const left = el('span', 'countdown');
    left.setAttribute('role', 'timer');
    kicker.append(left);
    const price = el('p', 'price', formatPrice(d.price, navigator.language) + ' ');
    price.append(el('s', 'was', formatPrice(p.price, navigator.language)));
    body.append(kicker, el('h3', null, p.title), price);
    if (d.units) body.append(el('p', 'units', d.units + ' left at this price'));
    const buy = el('a', 'buy', 'Buy');
    buy.href = p.url;
    buy.target = '_blank';
    buy.rel = 'noopener';
    buy.setAttribute('aria-label', 'Buy ' + p.title + ' at ' + formatPrice(d.price, navigator.language));
    body.append(buy);
    li.append(img, body);
    return { li, left };
  }

  // tick updates the countdowns from the video's clock: a deal's remaining
  // time is its end on the video's timeline (from the SDK) minus
  // currentTime, so it reaches zero on the frame the deal ends, at any
  // latency. It also retires the cards that lingered long enough.
  function tick() {
    frame = null;
    const t = video.currentTime;
    let nextZero = Infinity;
    for (const [id, c] of countdowns) {
      const times = sdk() && sdk().times(id);
      const end = times && Number.isFinite(times.end) ? times.end : c.entry.end;
      const left = end - t;
      if (left <= 0) {
        c.entry.zeroAt = t;
        c.el.textContent = 'ended';
        c.card.dataset.over = 'true';
        countdowns.delete(id);
        continue;
      }
      c.el.textContent = formatClock(Math.ceil(left)) + ' left';
      nextZero = Math.min(nextZero, left);
    }
    for (const [id, l] of lingering) {
      if (t >= l.until || t < l.from) {
        lingering.delete(id);
        if (l.card.isConnected) l.card.remove();
      }
    }
    if (countdowns.size || lingering.size) schedule(nextZero);
  }

  function schedule(nextZero) {
    if (frame === null && typeof requestAnimationFrame === 'function') frame = requestAnimationFrame(tick);
    // A timer for the zero itself, as rAF may be throttled or slow.
    clearTimeout(timer);
    if (Number.isFinite(nextZero) && !video.paused) {
      const rate = video.playbackRate > 0 ? video.playbackRate : 1;
      timer = setTimeout(tick, Math.max(5, (nextZero * 1000) / rate));
    } else if (countdowns.size || lingering.size) {
      timer = setTimeout(tick, 250);
    }
  }

  function linger(card, id, seconds) {
    lingering.set(id, { card, from: video.currentTime - 0.5, until: video.currentTime + seconds });
    schedule(Infinity);
  }

  // start shows a moment; it returns false for cues it does not render
  // (plain products, which the page shows itself, and unknown types).
  function start(cue, detail) {
    switch (cue.type) {
      case 'poll': {
        if (!cue.poll || find(cue.id)) return true;
        note(cue, detail);
        insert(pollCard(cue), cue);
        return true;
      }
      case 'poll_result': {
        if (!cue.poll_result || find(cue.id)) return true;
        note(cue, detail, { counts: cue.poll_result.counts.slice(), poll: cue.poll_result.poll });
        // The result takes the poll's place.
        insert(resultCard(cue), cue, find(cue.poll_result.poll));
        return true;
      }
      case 'deal': {
        if (!cue.deal || find(cue.id)) return true;
        const entry = note(cue, detail);
        const { li, left } = dealCard(cue);
        insert(li, cue);
        countdowns.set(cue.id, { el: left, entry, card: li });
        tick();
        return true;
      }
      default:
        return false;
    }
  }

  // end takes a moment off; it returns false for cues it does not render.
  function end(cue) {
    if (cue.type !== 'poll' && cue.type !== 'poll_result' && cue.type !== 'deal') return false;
    for (const m of record.moments) if (m.id === cue.id && m.endedAt == null) m.endedAt = video.currentTime;
    const card = find(cue.id);
    if (!card) return true; // replaced already
    if (cue.type === 'poll') {
      // Closed: the result comes at this very frame, or soon after.
      card.dataset.closed = 'true';
      for (const b of card.querySelectorAll('button')) b.disabled = true;
      const thanks = card.querySelector('.thanks');
      if (thanks) thanks.textContent = 'Poll closed';
      linger(card, cue.id, RESULT_WAIT);
    } else if (cue.type === 'deal') {
      tick(); // the countdown shows zero now
      linger(card, cue.id, DEAL_OVER);
    } else {
      card.remove();
    }
    return true;
  }

  // reset forgets everything, when the player's timeline changes.
  function reset() {
    countdowns.clear();
    lingering.clear();
    clearTimeout(timer);
    if (frame !== null && typeof cancelAnimationFrame === 'function') cancelAnimationFrame(frame);
    frame = null;
  }

  return { start, end, insert, reset };
}
