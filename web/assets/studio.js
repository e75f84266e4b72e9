// studio.js: the seller's page. "Show now" posts a product cue to the cue
// API, "Hide" deletes it; the list on the right is the API's view of the
// active and scheduled cues. A token, when the API asks for one, is kept in
// sessionStorage (this tab only), never in a URL.
import { startPlayer, statusReporter, formatPrice } from './player.js';

const name = document.body.dataset.stream;
const api = '/api/v1/streams/' + encodeURIComponent(name) + '/cues';
const TOKEN_KEY = 'shopcast.token';
const EXTRA_KEY = 'shopcast.extraProducts';
const alertEl = document.getElementById('alert');
const catalogEl = document.getElementById('catalog');
const cuesEl = document.getElementById('cues');
const tokenForm = document.getElementById('token-form');

const studio = { products: [], cues: [], errors: [] };
window.shopcast = studio;

const player = startPlayer(document.getElementById('video'), name, statusReporter(document));
studio.hls = player.hls;

function say(msg) {
  alertEl.textContent = msg || '';
  if (msg) studio.errors.push(msg);
}

// askToken shows the token form and resolves when it is submitted.
function askToken() {
  tokenForm.hidden = false;
  const input = document.getElementById('token');
  input.focus();
  return new Promise((resolve) => {
    tokenForm.onsubmit = (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = '';
      tokenForm.hidden = true;
      resolve();
    };
  });
}

async function call(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (resp.status === 401 && attempt < 3) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      say(token ? 'The token was refused.' : '');
      await askToken();
      continue;
    }
    let data = null;
    try { data = await resp.json(); } catch { /* not JSON */ }
    if (!resp.ok) {
      const why = data && (data.message || data.error) || resp.statusText;
      throw new Error(method + ' ' + resp.status + ': ' + why + (data && data.field ? ' (' + data.field + ')' : ''));
    }
    return data;
  }
}

// The API wants absolute URLs; the demo catalog names images on this server.
function absolute(product) {
  const p = structuredClone(product);
  p.image_url = new URL(p.image_url, location.href).href;
  p.url = new URL(p.url, location.href).href;
  return p;
}

function activeCueFor(sku) {
  return studio.cues.find((c) => c.cue.product && c.cue.product.sku === sku &&
    (c.state === 'active' || c.state === 'scheduled'));
}

async function showNow(product) {
  say('');
  try {
    await call('POST', api, { v: 1, type: 'product', product: absolute(product), at: 'now' });
  } catch (err) {
    say('Could not show ' + product.title + ': ' + err.message);
  }
  await refreshCues();
}

async function hide(id, title) {
  say('');
  try {
    await call('DELETE', api + '/' + encodeURIComponent(id));
  } catch (err) {
    say('Could not hide ' + title + ': ' + err.message);
  }
  await refreshCues();
}

function button(text, label, onclick, cls) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.className = cls;
  b.setAttribute('aria-label', label);
  b.addEventListener('click', onclick);
  return b;
}

function renderCatalog() {
  catalogEl.replaceChildren(...studio.products.map((p) => {
    const li = document.createElement('li');
    li.dataset.sku = p.sku;
    const img = document.createElement('img');
    img.src = p.image_url;
    img.alt = p.title;
    img.width = 48;
    img.height = 48;
    const text = document.createElement('span');
    text.className = 'product';
    text.textContent = p.title + ' · ' + formatPrice(p.price, navigator.language);
    const on = activeCueFor(p.sku);
    const showB = button('Show now', 'Show now: ' + p.title, () => showNow(p), 'show');
    const hideB = button('Hide', 'Hide: ' + p.title, () => on && hide(on.cue.id, p.title), 'hide');
    hideB.disabled = !on;
    li.append(img, text, showB, hideB);
    return li;
  }));
}

function renderCues() {
  if (!studio.cues.length) {
    const li = document.createElement('li');
    li.textContent = 'No product on air.';
    cuesEl.replaceChildren(li);
    return;
  }
  cuesEl.replaceChildren(...studio.cues.map((c) => {
    const li = document.createElement('li');
    li.dataset.cueId = c.cue.id;
    const title = cueTitle(c.cue);
    const text = document.createElement('span');
    text.textContent = title + ' · ' + c.state + ' · at ' + (c.media_time_ms / 1000).toFixed(3) + ' s';
    li.append(text, button('Hide', 'Hide: ' + title, () => hide(c.cue.id, title), 'hide'));
    return li;
  }));
}

let refreshing = null;
async function refreshCues() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const data = await call('GET', api);
      studio.cues = (data && data.cues) || [];
      studio.apiStatus = 200;
    } catch (err) {
      studio.cues = [];
      studio.apiStatus = err.message;
    }
    renderCues();
    renderCatalog();
    renderMoments();
  })();
  try { await refreshing; } finally { refreshing = null; }
}

async function loadCatalog() {
  try {
    const resp = await fetch('/catalog.json');
    const data = await resp.json();
    studio.products = data.products || [];
  } catch (err) {
    say('Could not load the catalog: ' + err.message);
  }
  try {
    studio.products.push(...JSON.parse(localStorage.getItem(EXTRA_KEY) || '[]'));
  } catch { /* a broken entry is ignored */ }
  renderCatalog();
  renderMoments();
}

document.getElementById('add-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const p = {
    sku: f.get('sku'), title: f.get('title'),
    price: { amount: f.get('amount'), currency: f.get('currency') },
    image_url: f.get('image_url'), url: f.get('url'),
  };
  const extra = JSON.parse(localStorage.getItem(EXTRA_KEY) || '[]');
  extra.push(p);
  localStorage.setItem(EXTRA_KEY, JSON.stringify(extra));
  studio.products.push(p);
  renderCatalog();
  e.target.reset();
});

// Moments: a poll, a flash deal, an update of a product on screen, each a
// form posting one cue. An update is a new cue naming the one it replaces
// (`replaces`): the viewers' card changes in place.
const pollForm = document.getElementById('poll-form');
const dealForm = document.getElementById('deal-form');
const updateForm = document.getElementById('update-form');

function cueTitle(cue) {
  switch (cue.type) {
    case 'product': return cue.product.title;
    case 'deal': return 'Deal: ' + cue.deal.product.title;
    case 'poll': return 'Poll: ' + cue.poll.question;
    case 'poll_result': return 'Result: ' + cue.poll_result.question;
    default: return cue.id;
  }
}

// fill replaces a select's options, keeping the choice when it is still
// offered.
function fill(select, items) {
  const was = select.value;
  select.replaceChildren(...items.map(([value, text]) => {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    return o;
  }));
  if (items.some(([v]) => v === was)) select.value = was;
}

function onScreen() {
  return studio.cues.filter((c) => c.state === 'active' && (c.cue.type === 'product' || c.cue.type === 'deal'));
}

function renderMoments() {
  fill(dealForm.elements.sku, studio.products.map((p) => [p.sku, p.title + ' · ' + formatPrice(p.price, navigator.language)]));
  const items = onScreen().map((c) => [c.cue.id, cueTitle(c.cue)]);
  fill(updateForm.elements.cue, items);
  updateForm.querySelector('button').disabled = !items.length;
}

async function postMoment(form, cue, what) {
  say('');
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const out = await call('POST', api, cue);
    studio.lastMoment = out;
    form.reset();
  } catch (err) {
    say('Could not ' + what + ': ' + err.message);
  } finally {
    button.disabled = false;
  }
  await refreshCues();
}

pollForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const f = new FormData(pollForm);
  const options = f.getAll('option').map((o) => o.trim()).filter(Boolean);
  postMoment(pollForm, {
    v: 1, type: 'poll', at: 'now',
    poll: { question: f.get('question').trim(), options },
    duration_ms: Math.round(Number(f.get('seconds')) * 1000),
  }, 'start the poll');
});

dealForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const f = new FormData(dealForm);
  const p = studio.products.find((x) => x.sku === f.get('sku'));
  if (!p) { say('Pick a product for the deal.'); return; }
  const product = absolute(p);
  const deal = { product, price: { amount: f.get('amount'), currency: product.price.currency } };
  if (f.get('units')) deal.units = Number(f.get('units'));
  postMoment(dealForm, {
    v: 1, type: 'deal', at: 'now', deal,
    duration_ms: Math.round(Number(f.get('seconds')) * 1000),
  }, 'start the deal');
});

updateForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const f = new FormData(updateForm);
  const old = onScreen().find((c) => c.cue.id === f.get('cue'));
  if (!old) { say('That product is no longer on screen.'); return; }
  const badge = f.get('badge').trim();
  const cue = { v: 1, type: old.cue.type, at: 'now', replaces: old.cue.id };
  if (old.cue.type === 'deal') {
    cue.deal = structuredClone(old.cue.deal);
    cue.deal.price.amount = f.get('amount');
    if (badge) cue.deal.product.badge = badge;
  } else {
    cue.product = structuredClone(old.cue.product);
    cue.product.price.amount = f.get('amount');
    if (badge) cue.product.badge = badge; else delete cue.product.badge;
  }
  // What is left of the old cue's duration, so the update ends when it would have.
  if (old.end_program_date_time) {
    const left = Date.parse(old.end_program_date_time) - Date.now();
    if (left > 1000) cue.duration_ms = Math.round(left);
    else { say('That cue is about to end.'); return; }
  }
  postMoment(updateForm, cue, 'update ' + cueTitle(old.cue));
});

await loadCatalog();
await refreshCues();
setInterval(refreshCues, 2000);
