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
    const title = c.cue.product ? c.cue.product.title : c.cue.id;
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

await loadCatalog();
await refreshCues();
setInterval(refreshCues, 2000);
