// studio-live.js: what the audience does, while on air: viewers now,
// hearts per minute, the open poll's running tally and, per product on
// screen, impressions, Buy clicks and click-through rate.
//
// It polls GET /api/v1/streams/NAME/audience every second rather than
// holding a Server-Sent Events stream: a studio is one or two tabs, so a
// poll a second costs nothing, it fits the 2 s the seller may wait, and it
// needs no long-lived response (the origin's write timeout ends those)
// nor anything a proxy might buffer. The token studio.js asked for, when
// the API wants one, is read from the same sessionStorage key.

const name = document.body.dataset.stream;
const url = '/api/v1/streams/' + encodeURIComponent(name) + '/audience';
const TOKEN_KEY = 'shopcast.token';
const PERIOD_MS = 1000;

const el = (id) => document.getElementById(id);
const live = { last: null, errors: [], updates: 0 };
window.shopcastStudioLive = live;

// activeCues are the product cues on air, from studio.js's list.
function activeCues() {
  const studio = window.shopcast;
  const out = new Map();
  for (const c of (studio && studio.cues) || []) {
    if (c.state === 'active' && c.cue) out.set(c.cue.id, c.cue);
  }
  return out;
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function render(a) {
  el('aud-viewers').textContent = String(a.viewers);
  el('aud-reactions').textContent = String(a.reactions_per_minute);
  const poll = (a.polls || []).find((p) => p.open) || null;
  const pollEl = el('aud-poll');
  if (!poll) {
    pollEl.textContent = 'No poll open';
    pollEl.dataset.votes = '0';
  } else {
    // The poll cue, from studio.js's list, names the question and options.
    const cue = ((window.shopcast && window.shopcast.cues) || []).map((c) => c.cue).find((c) => c && c.id === poll.id);
    const q = cue && cue.poll ? cue.poll : null;
    const label = (i) => (q && q.options && q.options[i]) || 'option ' + (i + 1);
    pollEl.textContent = (q ? q.question : poll.id) + ' ' + poll.counts.map((n, i) => label(i) + ' ' + n).join(', ') + ' (' + poll.votes + (poll.votes === 1 ? ' vote)' : ' votes)');
    pollEl.dataset.votes = String(poll.votes);
  }
  const onAir = activeCues();
  const rows = (a.products || []).filter((p) => onAir.size === 0 || onAir.has(p.cue));
  // Products on air without any signal yet still get their row.
  for (const [id, cue] of onAir) {
    if (!rows.some((p) => p.cue === id) && cue.product) rows.push({ cue: id, sku: cue.product.sku, impressions: 0, clicks: 0, ctr: 0 });
  }
  const body = el('aud-funnel');
  body.replaceChildren(...rows.map((p) => {
    const tr = document.createElement('tr');
    tr.dataset.cueId = p.cue;
    const cue = onAir.get(p.cue);
    const title = cue && cue.product ? cue.product.title : (p.sku || p.cue);
    tr.append(cell(title), cell(String(p.impressions)), cell(String(p.clicks)),
      cell(p.impressions ? (100 * p.ctr).toFixed(1) + ' %' : '–'));
    return tr;
  }));
  el('aud-empty').hidden = rows.length > 0;
}

async function refresh() {
  try {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const resp = await fetch(url, { headers, cache: 'no-store' });
    if (!resp.ok) {
      el('aud-state').textContent = resp.status === 404 ? 'Not on air' : 'Audience unavailable (' + resp.status + ')';
      return;
    }
    const a = await resp.json();
    live.last = a;
    live.updates++;
    el('aud-state').textContent = '';
    render(a);
  } catch (err) {
    live.errors.push(String(err && err.message || err));
  }
}

refresh();
setInterval(refresh, PERIOD_MS);
