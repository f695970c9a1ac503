'use strict';
/* Brook web console: a dependency-free single-page app with hash routes.
   Everything that comes from the server is inserted as text (text nodes / textContent), never as HTML. */

const POLL_MS = 3000;   // live views re-poll this often
const HISTORY = 100;    // graph points kept per view
const NF = new Intl.NumberFormat('en-US');
const enc = encodeURIComponent;
const $ = (sel) => document.querySelector(sel);
const SVG_NS = 'http://www.w3.org/2000/svg';

let session = { authRequired: false, user: null, readOnly: false, readOnlyReason: null };
let ctx = null;         // the current view's context: liveness and polling

/* ---------- formatting ---------- */

const fmt = (n) => (n == null || n === '' ? '\u2014' : typeof n === 'number' ? NF.format(n) : String(n));
const fmtRate = (x) => x.toLocaleString('en-US', { maximumFractionDigits: x < 10 ? 2 : x < 100 ? 1 : 0 });
const iso = (ms) => (typeof ms === 'number' && ms >= 0 && ms < 8.64e15 ? new Date(ms).toISOString() : '\u2014');
const hms = (ms) => new Date(ms).toISOString().slice(11, 19);
const toInt = (x) => (/^\s*-?\d+\s*$/.test(String(x)) ? parseInt(x, 10) : NaN);
const canWrite = () => !session.readOnly;

// Milliseconds since the epoch, or an ISO date / date-time (UTC unless it names an offset).
function parseTime(text) {
  const str = String(text).trim();
  if (!str) return null;
  if (/^\d+$/.test(str)) return Number(str);
  let v = str.replace(' ', 'T');
  if (/T\d\d:\d\d/.test(v) && !/(Z|[+-]\d\d:?\d\d)$/i.test(v)) v += 'Z';
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? null : ms;
}

/* ---------- DOM helpers ---------- */

const isAttrs = (a) => a != null && typeof a === 'object' && !(a instanceof Node) && !Array.isArray(a);

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function build(el, attrs, kids) {
  if (!isAttrs(attrs)) { kids.unshift(attrs); attrs = null; }
  setAttrs(el, attrs);
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    el.append(k instanceof Node ? k : String(k)); // strings become text nodes
  }
  return el;
}

// h('tag', {attrs}, ...children) builds an element; s(...) the same for SVG.
const h = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
const s = (tag, attrs, ...kids) => build(document.createElementNS(SVG_NS, tag), attrs, kids);

const muted = (text) => h('span', { class: 'muted' }, text);

function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', label), input, hint ? h('small', { class: 'muted' }, hint) : null);
}

function card(label, valueAttrs) {
  const value = h('div', { class: 'value', ...valueAttrs }, '\u2014');
  const el = h('div', { class: 'card' }, h('div', { class: 'label' }, label), value);
  return {
    el,
    set(text, kind) {
      value.textContent = text;
      el.classList.remove('good', 'warn', 'bad');
      if (kind) el.classList.add(kind);
    },
  };
}

function pageHead(title, { crumb, titleAttrs, extra, right } = {}) {
  return h('div', { class: 'page-head' },
    h('div', { class: 'titles' },
      crumb ? h('a', { class: 'crumb', href: crumb[1] }, crumb[0]) : null,
      h('div', { class: 'title-line' }, h('h1', titleAttrs || {}, title), extra)),
    h('div', { class: 'head-right' }, right));
}

const panel = (title, ...kids) => h('section', { class: 'panel' }, title ? h('h2', title) : null, ...kids);

/* ---------- flash messages ---------- */

let flashAt = 0, flashId = 0;
function flash(msg, kind = 'ok') {
  const f = $('#flash');
  f.textContent = msg;
  f.dataset.kind = kind;
  f.hidden = false;
  flashAt = Date.now();
  const id = ++flashId;
  // A success fades after 8 s; an error stays until dismissed or replaced.
  if (kind === 'ok') setTimeout(() => { if (flashId === id) f.hidden = true; }, 8000);
  return id;
}
// What the flash shows now, to put back when a passing poll error clears.
function flashSnapshot() {
  const f = $('#flash');
  return { msg: f.textContent, kind: f.dataset.kind, hidden: f.hidden, at: flashAt };
}
function flashRestore(snap) {
  const f = $('#flash');
  f.textContent = snap.msg;
  f.dataset.kind = snap.kind || 'ok';
  f.hidden = snap.hidden;
  flashAt = snap.at;
  flashId++;
}
const showError = (e) => flash(e && e.message ? e.message : String(e), 'error');

/* ---------- API ---------- */

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// Same-origin JSON call; resolves to the parsed body (null for 204), rejects with ApiError.
async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  // Every change says it is JSON (the server refuses others: no cross-site form can).
  if (method !== 'GET') {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body === undefined ? {} : body);
  }
  let res;
  try { res = await fetch('/api' + path, opts); } catch (e) { throw new ApiError(0, 'Network error: ' + e.message); }
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch (_) { data = null; } }
  if (!res.ok) {
    const msg = data && typeof data.error === 'string' ? data.error : `HTTP ${res.status} ${res.statusText}`;
    if (res.status === 401 && path !== '/login') {
      flash(`${msg} (please sign in)`, 'error');
      session.user = null;
      renderHeader();
      go('#/login');
    }
    throw new ApiError(res.status, msg);
  }
  return data;
}

/* ---------- sortable table ---------- */

function cmp(a, b) {
  const na = a == null || a === '', nb = b == null || b === '';
  if (na || nb) return na === nb ? 0 : na ? 1 : -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b), 'en', { numeric: true });
}

// cols: {t: header, v: row => sort value (omit: not sortable), c: row => cell content (default: v), cls, num}
// opts: row => tr attributes, empty message (string or function), initial sort [col, dir].
// set(rows) redraws the body only when the data changed, so unchanged rows keep their elements.
function makeTable(cols, { row = () => ({}), empty = 'Nothing here.', sort = null } = {}) {
  let rows = [], key = null, by = sort ? sort[0] : -1, dir = sort ? sort[1] : 1;
  const tbody = h('tbody');
  const ths = cols.map((c, i) => h('th', {
    class: [c.num ? 'num' : '', c.v ? 'sortable' : ''].join(' ').trim() || null,
    onclick: () => { if (!c.v) return; dir = by === i ? -dir : 1; by = i; draw(); },
  }, c.t));
  const el = h('table', { class: 'data' }, h('thead', h('tr', ths)), tbody);

  function draw() {
    ths.forEach((th, i) => { th.dataset.sort = i === by ? (dir > 0 ? 'asc' : 'desc') : ''; });
    const list = by >= 0 ? [...rows].sort((a, b) => cmp(cols[by].v(a), cols[by].v(b)) * dir) : rows;
    if (!list.length) {
      tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: cols.length }, typeof empty === 'function' ? empty() : empty)));
      return;
    }
    tbody.replaceChildren(...list.map((r) => h('tr', row(r), cols.map((c) => {
      const content = c.c ? c.c(r) : fmt(c.v(r));
      return h('td', { class: [c.cls || '', c.num ? 'num' : ''].join(' ').trim() || null }, content);
    }))));
  }
  return {
    el,
    set(next, force) {
      const k = JSON.stringify(next);
      if (!force && k === key) return;
      key = k; rows = next; draw();
    },
  };
}

/* ---------- graphs ---------- */

function niceMax(v) {
  if (!(v > 0)) return 1;
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e;
  return 10 * e;
}

const graphSvg = (test, label) => s('svg', { class: 'graph', viewBox: '0 0 640 190', 'data-test': test, role: 'img', 'aria-label': label });

// Draws pts ([time ms, value]) as a polyline with axes; "collecting..." until there are two points.
function drawGraph(svg, pts, unit) {
  const W = 640, H = 190, L = 58, R = 14, T = 22, B = 26, iw = W - L - R, ih = H - T - B;
  svg.replaceChildren(s('text', { x: L, y: 13, class: 'unit' }, unit));
  if (pts.length < 2) {
    svg.append(s('text', { x: W / 2, y: H / 2, class: 'collecting', 'text-anchor': 'middle' }, 'collecting...'));
    return;
  }
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0], span = Math.max(t1 - t0, 1);
  const max = niceMax(Math.max(...pts.map((p) => p[1])));
  const X = (t) => L + ((t - t0) / span) * iw, Y = (v) => T + ih - (v / max) * ih;
  for (const f of [0, 0.25, 0.5, 0.75, 1]) { // grid lines, labelled at 0, half and the top
    const y = Y(max * f);
    svg.append(s('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'gridline' }));
    if (f === 0 || f === 0.5 || f === 1) svg.append(s('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, fmtRate(max * f)));
  }
  svg.append(
    s('line', { x1: L, x2: L, y1: T, y2: T + ih, class: 'axis' }),
    s('line', { x1: L, x2: W - R, y1: T + ih, y2: T + ih, class: 'axis' }),
    s('text', { x: L, y: H - 6, class: 'tick' }, hms(t0)),
    s('text', { x: L + iw / 2, y: H - 6, class: 'tick', 'text-anchor': 'middle' }, 'time (UTC)'),
    s('text', { x: W - R, y: H - 6, class: 'tick', 'text-anchor': 'end' }, hms(t1)),
    s('polyline', { class: 'line', points: pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' ') }));
}

/* ---------- shared widgets ---------- */

// Delete button that reveals an inline confirmation (no window.confirm).
function deleteControl(label, question, test, onConfirm) {
  const open = h('button', { type: 'button', class: 'danger-outline', 'data-test': test }, label);
  const yes = h('button', { type: 'button', class: 'danger', 'data-test': test + '-confirm' }, 'Yes, delete');
  const box = h('span', { class: 'confirm', hidden: true }, h('span', question), yes,
    h('button', { type: 'button', onclick: () => { box.hidden = true; open.hidden = false; } }, 'Cancel'));
  open.addEventListener('click', () => { open.hidden = true; box.hidden = false; });
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    try { await onConfirm(); } catch (e) { showError(e); } finally { yes.disabled = false; }
  });
  return h('div', { class: 'delete-control' }, open, box);
}

// Configs of a topic or broker, editable in place (PUT putPath); update() skips while a value is edited.
function configTable(putPath, reload) {
  let data = [], editing = null, input = null;
  const filter = h('input', { type: 'search', placeholder: 'Filter configs\u2026', oninput: () => redraw() });
  const onlySet = h('input', { type: 'checkbox', onchange: () => redraw() });

  async function change(body, msg) {
    try {
      await api('PUT', putPath, { set: {}, delete: [], ...body });
      editing = null;
      flash(msg);
      redraw();
      await reload();
    } catch (e) { showError(e); }
  }
  const save = (c) => change({ set: { [c.name]: input.value } }, `Updated ${c.name}`);
  const reset = (c) => change({ delete: [c.name] }, `Reset ${c.name} to its default`);

  function valueCell(c) {
    if (editing === c.name) {
      input = h('input', {
        type: 'text', class: 'config-input', 'data-test': 'config-edit', 'data-name': c.name, value: c.sensitive ? '' : c.value ?? '',
        onkeydown: (e) => {
          if (e.key === 'Enter') { e.preventDefault(); save(c); }
          if (e.key === 'Escape') { editing = null; redraw(); }
        },
      });
      return input;
    }
    if (c.sensitive) return muted('(sensitive)');
    return c.value == null ? muted('null') : c.value;
  }

  function actionsCell(c) {
    if (c.readOnly) return muted('read-only');
    if (!canWrite()) return null;
    const btn = (text, test, fn) => h('button', { type: 'button', class: 'small', 'data-test': test, 'data-name': c.name, onclick: fn }, text);
    if (editing === c.name) {
      return [btn('save', 'config-save', () => save(c)), btn('cancel', 'config-cancel', () => { editing = null; redraw(); })];
    }
    return [
      btn('edit', 'config-edit-open', () => { editing = c.name; redraw(); if (input) { input.focus(); input.select(); } }),
      c.isDefault ? null : btn('reset', 'config-reset', () => reset(c)),
    ];
  }

  const table = makeTable([
    { t: 'Name', v: (c) => c.name, c: (c) => h('code', c.name), cls: 'name' },
    { t: 'Value', v: (c) => c.value, c: valueCell, cls: 'value' },
    { t: 'Source', v: (c) => c.source, c: (c) => h('span', { class: 'tag' }, c.source), cls: 'source' },
    { t: '', c: actionsCell, cls: 'actions' },
  ], {
    row: (c) => ({ 'data-test': 'config-row', 'data-name': c.name, class: c.isDefault ? null : 'nondefault' }),
    empty: () => (data.length ? 'No config matches the filter.' : 'No configs.'),
    sort: [0, 1],
  });

  function redraw() {
    const q = filter.value.trim().toLowerCase();
    const rows = data.filter((c) => (!onlySet.checked || !c.isDefault) && c.name.toLowerCase().includes(q));
    table.set(rows.map((c) => ({ ...c, _edit: c.name === editing }))); // _edit makes an edit state change redraw
  }
  return {
    el: h('div', h('div', { class: 'toolbar' }, filter, h('label', { class: 'check' }, onlySet, ' Only non-default'),
      muted('Non-default values are shown in bold.')), table.el),
    update(configs) { data = configs || []; if (!editing) redraw(); },
  };
}

/* ---------- views ---------- */

function viewOverview(main, ctx) {
  document.title = 'Overview \u00b7 Brook';
  const cards = {
    id: card('Cluster ID', { 'data-test': 'cluster-id' }),
    ctrl: card('Active controller', { 'data-test': 'controller' }),
    topics: card('Topics', { 'data-test': 'topic-count' }),
    parts: card('Partitions', { 'data-test': 'partition-count' }),
    under: card('Under-replicated', { 'data-test': 'under-replicated' }),
    offline: card('Offline partitions', { 'data-test': 'offline' }),
  };
  cards.id.el.classList.add('wide');
  const brokers = makeTable([
    { t: 'ID', v: (b) => b.id, c: (b) => h('a', { href: '#/brokers/' + enc(b.id) }, String(b.id)), num: true, cls: 'id' },
    { t: 'Host', v: (b) => b.host, cls: 'host' },
    { t: 'Port', v: (b) => b.port, c: (b) => String(b.port), num: true, cls: 'port' },
    { t: 'Rack', v: (b) => b.rack, c: (b) => b.rack ?? muted('\u2014'), cls: 'rack' },
    { t: 'Role', v: (b) => (b.controller ? 0 : 1), c: (b) => (b.controller ? h('span', { class: 'tag ok' }, 'controller') : null) },
    { t: '', c: (b) => h('a', { href: '#/brokers/' + enc(b.id) }, 'configs \u2192') },
  ], { row: (b) => ({ 'data-test': 'broker-row', 'data-id': b.id }), empty: 'No brokers.', sort: [0, 1] });

  const sub = muted(`Connected to node ${session.node ?? '?'} \u00b7 Brook ${session.version ?? ''}`);
  main.append(pageHead('Cluster overview', { right: sub }),
    h('div', { class: 'cards' }, Object.values(cards).map((c) => c.el)),
    panel('Brokers', brokers.el));

  ctx.poll(async () => {
    const d = await api('GET', '/cluster');
    if (!ctx.alive) return;
    cards.id.set(d.clusterId);
    cards.ctrl.set(d.controller == null ? 'none' : `node ${d.controller}`, d.controller == null ? 'bad' : '');
    cards.topics.set(fmt(d.topics));
    cards.parts.set(fmt(d.partitions));
    cards.under.set(fmt(d.underReplicated), d.underReplicated > 0 ? 'warn' : 'good');
    cards.offline.set(fmt(d.offline), d.offline > 0 ? 'bad' : 'good');
    brokers.set(d.brokers.map((b) => ({ ...b, controller: b.id === d.controller })));
  });
}

const agoText = (ms) => (ms == null ? null : ms < 1000 ? `${ms} ms ago` : ms < 120000 ? `${fmtRate(ms / 1000)} s ago` : `${Math.round(ms / 60000)} min ago`);

function viewQuorum(main, ctx) {
  document.title = 'Controller quorum \u00b7 Brook';
  const cards = {
    leader: card('Leader', { 'data-test': 'quorum-leader' }),
    epoch: card('Epoch', { 'data-test': 'quorum-epoch' }),
    hw: card('High watermark', { 'data-test': 'quorum-hw' }),
    voters: card('Voters caught up', { 'data-test': 'quorum-caught-up' }),
  };
  const cols = (voters) => [
    { t: 'ID', v: (r) => r.id, c: (r) => String(r.id), num: true, cls: 'id' },
    voters ? { t: 'Role', v: (r) => (r.leader ? 0 : 1), c: (r) => h('span', { class: r.leader ? 'tag ok' : 'tag' }, r.leader ? 'leader' : 'follower'), cls: 'role' } : null,
    voters ? { t: 'Endpoint', v: (r) => r.endpoint, c: (r) => r.endpoint ?? muted('\u2014'), cls: 'endpoint' } : null,
    { t: 'Log end', v: (r) => r.logEndOffset, c: (r) => (r.logEndOffset < 0 ? muted('unknown') : fmt(r.logEndOffset)), num: true, cls: 'log-end' },
    { t: 'Lag', v: (r) => r.lag, c: (r) => (r.lag == null ? muted('\u2014') : h('span', { class: r.lag > 0 ? 'tag warn' : 'tag ok' }, fmt(r.lag))), num: true, cls: 'lag' },
    { t: 'Last contact', v: (r) => r.lastFetchAgoMs, c: (r) => agoText(r.lastFetchAgoMs) ?? muted(r.leader ? 'itself' : 'unknown'), cls: 'last-fetch' },
    { t: 'Last caught up', v: (r) => r.lastCaughtUpAgoMs, c: (r) => agoText(r.lastCaughtUpAgoMs) ?? muted('unknown'), cls: 'caught-up' },
  ].filter(Boolean);
  const voters = makeTable(cols(true), { row: (r) => ({ 'data-test': 'voter-row', 'data-id': r.id }), empty: 'No voters.', sort: [0, 1] });
  const observers = makeTable(cols(false), { row: (r) => ({ 'data-test': 'observer-row', 'data-id': r.id }), empty: 'No observers: every broker here is a voter too.', sort: [0, 1] });
  main.append(pageHead('Controller quorum', { right: muted('The metadata log (__cluster_metadata) as its leader sees it; offsets are its entries.') }),
    h('div', { class: 'cards' }, Object.values(cards).map((c) => c.el)),
    panel('Voters (controllers)', voters.el),
    panel('Observers (brokers)', observers.el));

  ctx.poll(async () => {
    const d = await api('GET', '/quorum');
    if (!ctx.alive) return;
    cards.leader.set(d.leader < 0 ? 'none' : `node ${d.leader}`, d.leader < 0 ? 'bad' : '');
    cards.epoch.set(fmt(d.epoch));
    cards.hw.set(fmt(d.highWatermark));
    const level = d.voters.filter((r) => r.lag === 0).length;
    cards.voters.set(`${level} of ${d.voters.length}`, level * 2 > d.voters.length ? (level === d.voters.length ? 'good' : 'warn') : 'bad');
    voters.set(d.voters);
    observers.set(d.observers);
  });
}

function viewBroker(main, ctx, id) {
  document.title = `Broker ${id} \u00b7 Brook`;
  const info = muted('');
  const path = `/brokers/${enc(id)}/configs`;
  const refresh = async () => {
    const d = await api('GET', path);
    if (ctx.alive) configs.update(d.configs);
  };
  const configs = configTable(path, refresh);
  main.append(pageHead(`Broker ${id}`, { crumb: ['\u2190 Overview', '#/'], titleAttrs: { 'data-test': 'broker-id' }, extra: info }),
    panel('Configuration', configs.el));
  api('GET', '/cluster').then((c) => {
    const b = c.brokers.find((x) => String(x.id) === id);
    if (b && ctx.alive) info.textContent = `${b.host}:${b.port}${b.rack ? ' \u00b7 rack ' + b.rack : ''}${c.controller === b.id ? ' \u00b7 active controller' : ''}`;
  }).catch(() => {});
  ctx.poll(refresh);
}

function viewTopics(main, ctx) {
  document.title = 'Topics \u00b7 Brook';
  let data = [];
  const filter = h('input', { type: 'search', placeholder: 'Filter topics\u2026', 'data-test': 'topic-filter', oninput: () => draw() });
  const internal = h('input', { type: 'checkbox', 'data-test': 'show-internal', onchange: () => draw() });
  const count = muted('');
  const table = makeTable([
    { t: 'Name', v: (t) => t.name, cls: 'name',
      c: (t) => [h('a', { href: '#/topics/' + enc(t.name) }, t.name), t.internal ? h('span', { class: 'tag' }, 'internal') : null] },
    { t: 'Partitions', v: (t) => t.partitions, num: true, cls: 'partitions' },
    { t: 'Replication', v: (t) => t.replicationFactor, num: true, cls: 'replication' },
    { t: 'Under-replicated', v: (t) => t.underReplicated, num: true, cls: 'under-replicated',
      c: (t) => h('span', { class: t.underReplicated > 0 ? 'warn' : null }, fmt(t.underReplicated)) },
    { t: 'Records', v: (t) => t.records, num: true, cls: 'records' },
  ], {
    row: (t) => ({ 'data-test': 'topic-row', 'data-name': t.name }),
    empty: () => (data.length ? 'No topic matches the filter.' : 'No topics yet.'),
    sort: [0, 1],
  });

  function draw() {
    const q = filter.value.trim().toLowerCase();
    const rows = data.filter((t) => (internal.checked || !t.internal) && t.name.toLowerCase().includes(q));
    count.textContent = `${fmt(rows.length)} of ${fmt(data.length)} topics`;
    table.set(rows);
  }

  let form = null, open = null;
  if (canWrite()) {
    form = createTopicForm();
    open = h('button', { type: 'button', class: 'primary', 'data-test': 'create-topic-open',
      onclick: () => { form.hidden = false; form.querySelector('input').focus(); } }, '+ Create topic');
  }
  main.append(pageHead('Topics', { right: open }), form,
    panel(null, h('div', { class: 'toolbar' }, filter, h('label', { class: 'check' }, internal, ' Show internal topics'), count), table.el));

  ctx.poll(async () => {
    const d = await api('GET', '/topics');
    if (!ctx.alive) return;
    data = d;
    draw();
  });
}

// Lines of key=value (blank lines and # comments skipped) into an object of strings.
function parseConfigLines(text) {
  const out = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf('=');
    if (i <= 0) throw new Error(`Config line "${line}" is not key=value`);
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

function createTopicForm() {
  const name = h('input', { type: 'text', 'data-test': 'create-topic-name', placeholder: 'orders', autocomplete: 'off' });
  const parts = h('input', { type: 'number', min: 1, value: '1', 'data-test': 'create-topic-partitions' });
  const rf = h('input', { type: 'number', min: 1, value: '1', 'data-test': 'create-topic-replication' });
  const configs = h('textarea', { rows: 3, 'data-test': 'create-topic-configs', placeholder: 'cleanup.policy=compact\nretention.ms=86400000' });
  const submit = h('button', { type: 'submit', class: 'primary', 'data-test': 'create-topic-submit' }, 'Create');
  const form = h('form', { class: 'panel create-form', novalidate: true, hidden: true },
    h('h2', 'New topic'),
    h('div', { class: 'form-grid' },
      field('Name', name), field('Partitions', parts), field('Replication factor', rf),
      field('Configs (one key=value per line)', configs)),
    h('div', { class: 'form-actions' }, submit,
      h('button', { type: 'button', onclick: () => { form.hidden = true; } }, 'Cancel')));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = name.value.trim();
    const p = toInt(parts.value), r = toInt(rf.value);
    if (!n) return flash('A topic needs a name.', 'error');
    if (!(p >= 1)) return flash('Partitions must be a whole number of at least 1.', 'error');
    if (!(r >= 1)) return flash('Replication factor must be a whole number of at least 1.', 'error');
    let cfg;
    try { cfg = parseConfigLines(configs.value); } catch (err) { return flash(err.message, 'error'); }
    submit.disabled = true;
    try {
      const res = await api('POST', '/topics', { name: n, partitions: p, replicationFactor: r, configs: cfg });
      const created = (res && res.name) || n;
      flash(`Created topic ${created}`);
      go('#/topics/' + enc(created));
    } catch (err) { showError(err); } finally { submit.disabled = false; }
  });
  return form;
}

function viewTopic(main, ctx, name) {
  document.title = `${name} \u00b7 Brook`;
  const base = '/topics/' + enc(name);
  const internalTag = h('span', { class: 'tag', hidden: true }, 'internal');
  const cards = {
    parts: card('Partitions', { 'data-test': 'partition-count' }),
    rf: card('Replication factor'),
    records: card('Records', { 'data-test': 'record-count' }),
    under: card('Under-replicated'),
    rate: card('Throughput', { 'data-test': 'throughput' }),
  };
  const graph = graphSvg('throughput-graph', 'Throughput in records per second');
  const samples = []; // {t, sum of end offsets}
  let current = 0;

  const under = (p) => p.isr.length < p.replicas.length;
  const partitions = makeTable([
    { t: 'Partition', v: (p) => p.partition, num: true, cls: 'partition' },
    { t: 'Leader', v: (p) => p.leader, num: true, cls: 'leader',
      c: (p) => (p.leader == null || p.leader < 0 ? h('span', { class: 'bad' }, 'none') : String(p.leader)) },
    { t: 'Replicas', v: (p) => p.replicas.join(','), c: (p) => p.replicas.join(', '), cls: 'replicas' },
    { t: 'ISR', v: (p) => p.isr.join(','), cls: 'isr',
      c: (p) => h('span', { class: under(p) ? 'warn' : null, title: under(p) ? 'ISR smaller than the replica set' : null }, p.isr.join(', ') || 'none') },
    { t: 'Start offset', v: (p) => p.startOffset, num: true, cls: 'start' },
    { t: 'End offset', v: (p) => p.endOffset, num: true, cls: 'end' },
    { t: 'Records', v: (p) => p.endOffset - p.startOffset, num: true, cls: 'records' },
  ], { row: (p) => ({ 'data-test': 'partition-row', 'data-partition': p.partition, class: under(p) ? 'under' : null }), empty: 'No partitions.', sort: [0, 1] });

  const refresh = async () => {
    const d = await api('GET', base);
    if (!ctx.alive) return;
    const ps = d.partitions;
    current = ps.length;
    internalTag.hidden = !d.internal;
    partitions.set(ps);
    configs.update(d.configs);
    const sum = ps.reduce((a, p) => a + p.endOffset, 0);
    const total = ps.reduce((a, p) => a + (p.endOffset - p.startOffset), 0);
    const nUnder = ps.filter(under).length;
    cards.parts.set(fmt(ps.length));
    cards.rf.set(fmt(Math.max(0, ...ps.map((p) => p.replicas.length))));
    cards.records.set(fmt(total));
    cards.under.set(fmt(nUnder), nUnder ? 'warn' : 'good');
    if (addInput) addInput.placeholder = `more than ${current}`;
    // Throughput history: samples closer than a second (an extra refresh after an action) are skipped.
    const now = Date.now();
    if (!samples.length || now - samples[samples.length - 1].t >= 1000) {
      samples.push({ t: now, sum });
      if (samples.length > HISTORY + 1) samples.shift();
    }
    // Each interval's average rate, drawn as a step so two samples already make a line.
    const pts = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1], b = samples[i];
      const rate = Math.max(0, (b.sum - a.sum) / ((b.t - a.t) / 1000));
      pts.push([a.t, rate], [b.t, rate]);
    }
    cards.rate.set(pts.length ? `${fmtRate(pts[pts.length - 1][1])} rec/s` : 'collecting...');
    drawGraph(graph, pts, 'records/s');
  };
  const configs = configTable(base + '/configs', refresh);

  // Administration: add partitions, delete.
  let addInput = null, admin = null;
  if (canWrite()) {
    addInput = h('input', { type: 'number', min: 1, 'data-test': 'add-partitions', placeholder: 'new total' });
    const addBtn = h('button', { type: 'submit', 'data-test': 'add-partitions-submit' }, 'Add partitions');
    const addForm = h('form', { class: 'inline', novalidate: true }, field('New partition count (total)', addInput), addBtn);
    addForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      const n = toInt(addInput.value);
      if (!(n >= 1)) return flash('Enter the new total number of partitions.', 'error');
      addBtn.disabled = true;
      try {
        await api('POST', base + '/partitions', { count: n });
        flash(`${name} now has ${fmt(n)} partitions`);
        addInput.value = '';
        await refresh();
      } catch (err) { showError(err); } finally { addBtn.disabled = false; }
    });
    const del = deleteControl('Delete topic', `Delete topic ${name} and all its records?`, 'topic-delete', async () => {
      await api('DELETE', base);
      flash(`Deleted topic ${name}`);
      go('#/topics');
    });
    admin = panel('Administration', h('div', { class: 'body stack' }, addForm,
      h('div', { class: 'danger-zone' }, h('div', { class: 'muted' }, 'Deleting a topic removes its records for good.'), del)));
  }

  const browse = h('a', { class: 'button', href: `#/topics/${enc(name)}/records`, 'data-test': 'browse-records' }, 'Browse records \u2192');
  main.append(
    pageHead(name, { crumb: ['\u2190 Topics', '#/topics'], titleAttrs: { 'data-test': 'topic-name' }, extra: internalTag, right: browse }),
    h('div', { class: 'cards' }, Object.values(cards).map((c) => c.el)),
    h('div', { class: admin ? 'grid2' : '' }, panel('Throughput (records/s)', h('div', { class: 'body' }, graph)), admin),
    panel('Partitions', partitions.el),
    panel('Configuration', configs.el));
  drawGraph(graph, [], 'records/s');
  ctx.poll(refresh);
}

// A key or value: JSON objects/arrays pretty-printed, base64 marked as binary, null shown as such.
function payload(text, encoding) {
  if (text == null) return muted('null');
  if (encoding === 'base64') return [h('code', { class: 'b64' }, text), h('span', { class: 'note' }, ' (binary)')];
  const t = text.trim();
  if ((t.startsWith('{') && t.endsWith('}')) || (t.startsWith('[') && t.endsWith(']'))) {
    try { return h('pre', { class: 'json' }, JSON.stringify(JSON.parse(t), null, 2)); } catch (_) { /* not JSON */ }
  }
  return h('span', { class: 'text' }, text);
}

function viewRecords(main, ctx, name) {
  document.title = `${name} records \u00b7 Brook`;
  const base = '/topics/' + enc(name);
  let records = [], seq = 0, loaded = false;

  const partition = h('select', { 'data-test': 'records-partition' }, h('option', { value: 'all' }, 'all'));
  const mode = h('select', { 'data-test': 'records-mode', onchange: () => hint() },
    ['latest', 'offset', 'timestamp'].map((m) => h('option', { value: m }, m)));
  const value = h('input', { type: 'text', 'data-test': 'records-value', autocomplete: 'off' });
  const limit = h('input', { type: 'number', min: 1, max: 500, value: '50', 'data-test': 'records-limit' });
  const load = h('button', { type: 'submit', class: 'primary', 'data-test': 'records-load' }, 'Load');
  const follow = h('input', { type: 'checkbox', 'data-test': 'records-follow',
    onchange: () => { if (follow.checked && mode.value === 'latest') fetchRecords(true).catch(showError); } });
  const search = h('input', { type: 'search', 'data-test': 'records-search', placeholder: 'Search key, value, headers\u2026', oninput: () => draw(), onchange: () => draw() });
  const status = muted('Choose what to read and press Load.');

  function hint() {
    value.placeholder = { latest: '(not used)', offset: 'offset, e.g. 0', timestamp: 'ms or ISO date, e.g. 2024-05-01T12:00:00Z' }[mode.value];
  }
  hint();

  const table = makeTable([
    { t: 'Partition', v: (r) => r.partition, num: true, cls: 'partition' },
    { t: 'Offset', v: (r) => r.offset, num: true, cls: 'offset' },
    { t: 'Timestamp (UTC)', v: (r) => r.timestamp, c: (r) => iso(r.timestamp), cls: 'timestamp' },
    { t: 'Key', v: (r) => r.key, c: (r) => payload(r.key, r.keyEncoding), cls: 'key' },
    { t: 'Value', v: (r) => r.value, c: (r) => payload(r.value, r.valueEncoding), cls: 'value' },
    { t: 'Headers', cls: 'headers',
      c: (r) => (r.headers || []).map((x) => h('div', { class: 'hdr' }, h('b', x.key), ': ', x.value == null ? muted('null') : x.value)) },
  ], {
    row: (r) => ({ 'data-test': 'record-row', 'data-partition': r.partition, 'data-offset': r.offset }),
    empty: () => (loaded ? (records.length ? 'No loaded record matches the search.' : 'No records.') : 'No records loaded.'),
  });

  const matches = (r, q) => [r.key, r.value, ...(r.headers || []).flatMap((x) => [x.key, x.value])]
    .some((t) => t != null && String(t).toLowerCase().includes(q));

  function draw() {
    const q = search.value.trim().toLowerCase();
    const rows = q ? records.filter((r) => matches(r, q)) : records;
    if (loaded) status.textContent = `${fmt(records.length)} records loaded${q ? `, ${fmt(rows.length)} match` : ''} \u00b7 ${hms(Date.now())} UTC`;
    table.set(rows);
  }

  // Loads per the controls; quiet (follow mode) keeps the table until the answer arrives.
  async function fetchRecords(quiet) {
    const q = new URLSearchParams();
    if (partition.value !== 'all') q.set('partition', partition.value);
    q.set('mode', mode.value);
    if (mode.value === 'offset') {
      const v = toInt(value.value);
      if (partition.value === 'all') throw new Error('Reading from an offset needs one partition.');
      if (!(v >= 0)) throw new Error('Enter an offset (a whole number).');
      q.set('value', String(v));
    } else if (mode.value === 'timestamp') {
      const ms = parseTime(value.value);
      if (ms == null) throw new Error('Enter a timestamp: milliseconds or an ISO date such as 2024-05-01T12:00:00Z.');
      q.set('value', String(ms));
    }
    let n = toInt(limit.value);
    if (!(n >= 1)) n = 50;
    q.set('limit', String(Math.min(n, 500)));
    const mine = ++seq;
    if (!quiet) { loaded = false; records = []; status.textContent = 'Loading\u2026'; table.set([], true); }
    const d = await api('GET', `${base}/records?${q}`);
    if (!ctx.alive || mine !== seq) return;
    records = d.records || [];
    loaded = true;
    draw();
  }

  const form = h('form', { class: 'records-form', novalidate: true },
    field('Partition', partition), field('Mode', mode), field('Offset / timestamp', value), field('Limit (max 500)', limit),
    h('div', { class: 'field end' }, load),
    h('label', { class: 'check end' }, follow, ' Follow (latest, every 3 s)'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    load.disabled = true;
    try { await fetchRecords(false); } catch (err) { status.textContent = ''; showError(err); } finally { load.disabled = false; }
  });

  main.append(pageHead(`${name} \u00b7 records`, { crumb: ['\u2190 ' + name, '#/topics/' + enc(name)], titleAttrs: { 'data-test': 'records-topic' } }),
    panel(null, h('div', { class: 'body' }, form)),
    panel(null, h('div', { class: 'toolbar' }, search, status), h('div', { class: 'scroll-x' }, table.el)));

  api('GET', base).then((d) => {
    if (!ctx.alive) return;
    const ids = d.partitions.map((p) => p.partition).sort((a, b) => a - b);
    partition.append(...ids.map((p) => h('option', { value: p }, String(p))));
  }).catch(showError);
  // No auto-load; the loop only reloads while "follow" is ticked in latest mode.
  ctx.poll(async () => { if (follow.checked && mode.value === 'latest') await fetchRecords(true); });
}

const stateClass = (st) => ({ Stable: 'ok', Empty: '', Dead: 'bad' }[st] ?? 'warn');

function viewGroups(main, ctx) {
  document.title = 'Consumer groups \u00b7 Brook';
  let data = [];
  const filter = h('input', { type: 'search', placeholder: 'Filter groups\u2026', 'data-test': 'group-filter', oninput: () => draw() });
  const count = muted('');
  const table = makeTable([
    { t: 'Group', v: (g) => g.id, c: (g) => h('a', { href: '#/groups/' + enc(g.id) }, g.id), cls: 'id' },
    { t: 'State', v: (g) => g.state, c: (g) => h('span', { class: 'tag ' + stateClass(g.state) }, g.state), cls: 'state' },
    { t: 'Protocol', v: (g) => g.protocol, cls: 'protocol' },
    { t: 'Type', v: (g) => g.protocolType, cls: 'protocol-type' },
    { t: 'Members', v: (g) => g.members, num: true, cls: 'members' },
    { t: 'Lag', v: (g) => g.lag, num: true, cls: 'lag', c: (g) => h('span', { class: g.lag > 0 ? 'warn' : null }, fmt(g.lag)) },
  ], {
    row: (g) => ({ 'data-test': 'group-row', 'data-name': g.id }),
    empty: () => (data.length ? 'No group matches the filter.' : 'No consumer groups.'),
    sort: [0, 1],
  });
  function draw() {
    const q = filter.value.trim().toLowerCase();
    const rows = data.filter((g) => g.id.toLowerCase().includes(q));
    count.textContent = `${fmt(rows.length)} of ${fmt(data.length)} groups`;
    table.set(rows);
  }
  main.append(pageHead('Consumer groups'), panel(null, h('div', { class: 'toolbar' }, filter, count), table.el));
  ctx.poll(async () => {
    const d = await api('GET', '/groups');
    if (!ctx.alive) return;
    data = d;
    draw();
  });
}

function viewGroup(main, ctx, id) {
  document.title = `${id} \u00b7 Brook`;
  const base = '/groups/' + enc(id);
  const state = h('span', { class: 'tag', 'data-test': 'group-state' }, '\u2026');
  const cards = {
    proto: card('Protocol', { 'data-test': 'group-protocol' }),
    members: card('Members', { 'data-test': 'member-count' }),
    parts: card('Partitions with offsets'),
    lag: card('Total lag', { 'data-test': 'total-lag' }),
  };
  const graph = graphSvg('lag-graph', 'Total lag over time');
  const history = []; // [time, total lag]

  const members = makeTable([
    { t: 'Member ID', v: (m) => m.memberId, c: (m) => h('code', m.memberId), cls: 'member-id' },
    { t: 'Client ID', v: (m) => m.clientId, cls: 'client-id' },
    { t: 'Host', v: (m) => m.host, cls: 'host' },
    { t: 'Assignment', cls: 'assignment',
      c: (m) => (m.assignment.length ? m.assignment.map((a) => `${a.topic}-${a.partition}`).join(', ') : muted('none')) },
  ], { row: (m) => ({ 'data-test': 'member-row', 'data-member': m.memberId }), empty: 'No active members.', sort: [1, 1] });

  const offsets = makeTable([
    { t: 'Topic', v: (o) => o.topic, c: (o) => h('a', { href: '#/topics/' + enc(o.topic) }, o.topic), cls: 'topic' },
    { t: 'Partition', v: (o) => o.partition, num: true, cls: 'partition' },
    { t: 'Committed', v: (o) => o.committed, num: true, cls: 'committed' },
    { t: 'End offset', v: (o) => o.endOffset, num: true, cls: 'end' },
    { t: 'Lag', v: (o) => o.lag, num: true, cls: 'lag', c: (o) => h('span', { class: o.lag > 0 ? 'warn' : null }, fmt(o.lag)) },
  ], {
    row: (o) => ({ 'data-test': 'offset-row', 'data-topic': o.topic, 'data-partition': o.partition }),
    empty: 'No committed offsets.', sort: [0, 1],
  });

  // Reset form (only when writes are allowed).
  let resetTopic = null, topicsSig = null, admin = null;
  if (canWrite()) {
    resetTopic = h('select', { 'data-test': 'reset-topic' }, h('option', { value: '' }, 'all topics'));
    const to = h('select', { 'data-test': 'reset-to' }, ['earliest', 'latest', 'offset', 'timestamp'].map((t) => h('option', { value: t }, t)));
    const value = h('input', { type: 'text', 'data-test': 'reset-value', autocomplete: 'off', placeholder: 'offset, ms or ISO date' });
    const submit = h('button', { type: 'submit', class: 'primary', 'data-test': 'reset-submit' }, 'Reset offsets');
    const form = h('form', { class: 'inline', novalidate: true },
      field('Topic', resetTopic), field('Reset to', to), field('Offset / timestamp', value), h('div', { class: 'field end' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      let v = null;
      if (to.value === 'offset') {
        v = toInt(value.value);
        if (!(v >= 0)) return flash('Enter the offset to reset to (a whole number).', 'error');
      } else if (to.value === 'timestamp') {
        v = parseTime(value.value);
        if (v == null) return flash('Enter a timestamp: milliseconds or an ISO date such as 2024-05-01T12:00:00Z.', 'error');
      }
      submit.disabled = true;
      try {
        const res = await api('POST', base + '/reset', { topic: resetTopic.value || null, to: to.value, value: v });
        const list = (res && res.offsets) || [];
        const shown = list.slice(0, 20).map((o) => `${o.topic}-${o.partition} \u2192 ${fmt(o.offset)}`).join(', ');
        flash(`Reset ${list.length} offset${list.length === 1 ? '' : 's'} of ${id}: ${shown}${list.length > 20 ? `, \u2026 and ${list.length - 20} more` : ''}`);
        await refresh();
      } catch (err) { showError(err); } finally { submit.disabled = false; }
    });
    const del = deleteControl('Delete group', `Delete group ${id} and its committed offsets?`, 'group-delete', async () => {
      await api('DELETE', base);
      flash(`Deleted group ${id}`);
      go('#/groups');
    });
    admin = panel('Administration', h('div', { class: 'body stack' },
      h('div', { class: 'muted' }, 'Offsets can only be reset while the group has no active members.'), form,
      h('div', { class: 'danger-zone' }, del)));
  }

  const refresh = async () => {
    const d = await api('GET', base);
    if (!ctx.alive) return;
    state.textContent = d.state;
    state.className = 'tag ' + stateClass(d.state);
    members.set(d.members);
    offsets.set(d.offsets);
    const total = d.offsets.reduce((a, o) => a + (o.lag > 0 ? o.lag : 0), 0);
    cards.proto.set(`${d.protocol}${d.protocolType ? ' / ' + d.protocolType : ''}`);
    cards.members.set(fmt(d.members.length));
    cards.parts.set(fmt(d.offsets.length));
    cards.lag.set(fmt(total), total > 0 ? 'warn' : 'good');
    const now = Date.now();
    if (!history.length || now - history[history.length - 1][0] >= 1000) {
      history.push([now, total]);
      if (history.length > HISTORY) history.shift();
    }
    drawGraph(graph, history, 'total lag (records)');
    if (resetTopic) {
      const topics = [...new Set(d.offsets.map((o) => o.topic))].sort();
      const sig = topics.join('\n');
      if (sig !== topicsSig) { // rebuild options only when the topics change, keeping the choice
        topicsSig = sig;
        const chosen = resetTopic.value;
        resetTopic.replaceChildren(h('option', { value: '' }, 'all topics'), ...topics.map((t) => h('option', { value: t }, t)));
        resetTopic.value = topics.includes(chosen) ? chosen : '';
      }
    }
  };

  main.append(
    pageHead(id, { crumb: ['\u2190 Consumer groups', '#/groups'], titleAttrs: { 'data-test': 'group-id' }, extra: state }),
    h('div', { class: 'cards' }, Object.values(cards).map((c) => c.el)),
    h('div', { class: admin ? 'grid2' : '' }, panel('Total lag over time', h('div', { class: 'body' }, graph)), admin),
    panel('Members', members.el),
    panel('Committed offsets', offsets.el));
  drawGraph(graph, [], 'total lag (records)');
  ctx.poll(refresh);
}

function viewLogin(main) {
  document.title = 'Sign in \u00b7 Brook';
  // OAUTHBEARER listeners take a bearer token (a JWT from the identity provider); the others a password.
  const withToken = session.loginWith === 'token';
  const user = h('input', { type: 'text', 'data-test': 'login-user', autocomplete: 'username' });
  const password = h('input', { type: 'password', 'data-test': 'login-password', autocomplete: 'current-password' });
  const token = h('textarea', { 'data-test': 'login-token', rows: 5, spellcheck: 'false', autocomplete: 'off', placeholder: 'eyJhbGciOi\u2026' });
  const submit = h('button', { type: 'submit', class: 'primary', 'data-test': 'login-submit' }, 'Sign in');
  const form = h('form', { class: 'panel login', novalidate: true },
    h('h2', 'Sign in to Brook'),
    h('div', { class: 'body stack' },
      session.authRequired ? null : h('p', { class: 'muted' }, 'This console does not require a login.'),
      withToken ? field('Bearer token', token, 'OAUTHBEARER: the broker checks it; the session ends when it expires')
        : [field('User', user), field('Password', password)],
      submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const body = withToken ? { token: token.value.trim() } : { user: user.value, password: password.value };
      const res = await api('POST', '/login', body);
      await loadSession();
      flash(`Signed in as ${(res && res.user) || user.value}`);
      go('#/');
    } catch (err) { showError(err); } finally { submit.disabled = false; }
  });
  main.append(form);
  (withToken ? token : user).focus();
}

/* ---------- ACLs and quotas ---------- */

const selectOf = (test, values, chosen) =>
  h('select', { 'data-test': test }, ...values.map((v) => h('option', { value: v, selected: v === chosen ? true : null }, v)));

function viewAcls(main, ctx) {
  document.title = 'ACLs \u00b7 Brook';
  let data = [];
  const filter = h('input', { type: 'search', placeholder: 'Filter entries\u2026', 'data-test': 'acl-filter', oninput: () => draw() });
  const count = muted('');
  const note = h('div', { class: 'body', 'data-test': 'acl-note', hidden: true },
    'The cluster has no authorizer (authorizer.class.name): every request is allowed and there are no ACLs.');
  const table = makeTable([
    { t: 'Permission', v: (a) => a.permission, cls: 'permission',
      c: (a) => h('span', { class: 'tag ' + (a.permission === 'DENY' ? 'bad' : 'ok') }, a.permission) },
    { t: 'Principal', v: (a) => a.principal, cls: 'principal' },
    { t: 'Operation', v: (a) => a.operation, cls: 'operation' },
    { t: 'Resource', v: (a) => a.resourceType, cls: 'resource-type' },
    { t: 'Pattern', v: (a) => a.patternType, cls: 'pattern' },
    { t: 'Name', v: (a) => a.resourceName, cls: 'resource-name' },
    { t: 'Host', v: (a) => a.host, cls: 'host' },
    { t: '', c: (a) => (canWrite() ? deleteControl('Remove', 'Remove this entry?', 'acl-delete', async () => {
      await api('DELETE', '/acls', a);
      flash(`Removed ${a.permission} ${a.operation} on ${a.resourceType} ${a.resourceName} for ${a.principal}`);
      await load();
    }) : null) },
  ], {
    row: (a) => ({ 'data-test': 'acl-row', 'data-key': [a.permission, a.principal, a.operation, a.resourceType, a.patternType, a.resourceName].join(' ') }),
    empty: () => (data.length ? 'No entry matches the filter.' : 'No ACLs.'),
    sort: [3, 1],
  });
  function draw() {
    const q = filter.value.trim().toLowerCase();
    const rows = data.filter((a) => [a.principal, a.resourceName, a.operation, a.resourceType].join(' ').toLowerCase().includes(q));
    count.textContent = `${fmt(rows.length)} of ${fmt(data.length)} entries`;
    table.set(rows);
  }

  let form = null, open = null;
  if (canWrite()) {
    const principal = h('input', { type: 'text', 'data-test': 'acl-principal', placeholder: 'User:alice', autocomplete: 'off' });
    const type = selectOf('acl-resource-type', ['TOPIC', 'GROUP', 'CLUSTER', 'TRANSACTIONAL_ID'], 'TOPIC');
    const name = h('input', { type: 'text', 'data-test': 'acl-resource-name', placeholder: 'orders (* for all)', autocomplete: 'off' });
    const pattern = selectOf('acl-pattern', ['LITERAL', 'PREFIXED'], 'LITERAL');
    const operation = selectOf('acl-operation', ['READ', 'WRITE', 'CREATE', 'DELETE', 'ALTER', 'DESCRIBE', 'CLUSTER_ACTION',
      'DESCRIBE_CONFIGS', 'ALTER_CONFIGS', 'IDEMPOTENT_WRITE', 'ALL'], 'READ');
    const permission = selectOf('acl-permission', ['ALLOW', 'DENY'], 'ALLOW');
    const host = h('input', { type: 'text', 'data-test': 'acl-host', value: '*', autocomplete: 'off' });
    const submit = h('button', { type: 'submit', class: 'primary', 'data-test': 'acl-submit' }, 'Add');
    form = h('form', { class: 'panel create-form', novalidate: true, hidden: true },
      h('h2', 'New entry'),
      h('div', { class: 'form-grid' },
        field('Principal', principal), field('Permission', permission), field('Operation', operation),
        field('Resource type', type), field('Resource name', name, 'ignored for CLUSTER'), field('Pattern', pattern), field('Host', host)),
      h('div', { class: 'form-actions' }, submit, h('button', { type: 'button', onclick: () => { form.hidden = true; } }, 'Cancel')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const entry = { principal: principal.value.trim(), resourceType: type.value, resourceName: type.value === 'CLUSTER' ? 'kafka-cluster' : name.value.trim(),
        patternType: pattern.value, operation: operation.value, permission: permission.value, host: host.value.trim() || '*' };
      if (!/^User:.+/.test(entry.principal)) return flash('A principal is User:NAME (or User:*).', 'error');
      if (!entry.resourceName) return flash('Name the resource (* for all of its kind).', 'error');
      submit.disabled = true;
      try {
        await api('POST', '/acls', entry);
        flash(`Added ${entry.permission} ${entry.operation} on ${entry.resourceType} ${entry.resourceName} for ${entry.principal}`);
        form.hidden = true;
        await load();
      } catch (err) { showError(err); } finally { submit.disabled = false; }
    });
    open = h('button', { type: 'button', class: 'primary', 'data-test': 'acl-open',
      onclick: () => { form.hidden = false; principal.focus(); } }, '+ Add entry');
  }
  main.append(pageHead('Access control lists', { right: open }), form,
    panel(null, note, h('div', { class: 'toolbar' }, filter, count), table.el));
  async function load() {
    const d = await api('GET', '/acls');
    if (!ctx.alive) return;
    note.hidden = d.authorizer;
    if (open) open.hidden = !d.authorizer;
    data = d.acls;
    draw();
  }
  ctx.poll(load);
}

const QUOTA_KEYS = ['producer_byte_rate', 'consumer_byte_rate', 'request_percentage', 'controller_mutation_rate', 'connection_creation_rate'];
const entityLabel = (entity) => entity.map((p) => `${p.type}=${p.name == null ? '<default>' : p.name}`).join(', ');

function viewQuotas(main, ctx) {
  document.title = 'Quotas \u00b7 Brook';
  let data = [];
  const table = makeTable([
    { t: 'Entity', v: (q) => entityLabel(q.entity), cls: 'entity' },
    { t: 'Quota', v: (q) => q.key, cls: 'quota-key' },
    { t: 'Value', v: (q) => q.value, num: true, cls: 'quota-value' },
    { t: '', c: (q) => (canWrite() ? deleteControl('Remove', 'Remove this quota?', 'quota-delete', async () => {
      await api('PUT', '/quotas', { entity: q.entity, remove: [q.key] });
      flash(`Removed ${q.key} of ${entityLabel(q.entity)}`);
      await load();
    }) : null) },
  ], {
    row: (q) => ({ 'data-test': 'quota-row', 'data-key': `${entityLabel(q.entity)} ${q.key}` }),
    empty: 'No client quotas.',
    sort: [0, 1],
  });

  let form = null, open = null;
  if (canWrite()) {
    const type = selectOf('quota-entity-type', ['user', 'client-id'], 'user');
    const name = h('input', { type: 'text', 'data-test': 'quota-entity-name', placeholder: 'alice (empty: the default)', autocomplete: 'off' });
    const key = selectOf('quota-key', QUOTA_KEYS, 'producer_byte_rate');
    const value = h('input', { type: 'number', min: 0, step: 'any', 'data-test': 'quota-value', placeholder: '1048576' });
    const submit = h('button', { type: 'submit', class: 'primary', 'data-test': 'quota-submit' }, 'Set');
    form = h('form', { class: 'panel create-form', novalidate: true, hidden: true },
      h('h2', 'Set a quota'),
      h('div', { class: 'form-grid' }, field('Entity type', type), field('Name', name, 'empty: every one without its own'),
        field('Quota', key, 'bytes/s, or % of a thread for request_percentage'), field('Value', value)),
      h('div', { class: 'form-actions' }, submit, h('button', { type: 'button', onclick: () => { form.hidden = true; } }, 'Cancel')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const v = Number(value.value);
      if (value.value.trim() === '' || !(v >= 0)) return flash('A quota is a number of at least 0.', 'error');
      const entity = [{ type: type.value, name: name.value.trim() === '' ? null : name.value.trim() }];
      submit.disabled = true;
      try {
        await api('PUT', '/quotas', { entity, set: { [key.value]: v } });
        flash(`Set ${key.value} of ${entityLabel(entity)} to ${fmt(v)}`);
        form.hidden = true;
        await load();
      } catch (err) { showError(err); } finally { submit.disabled = false; }
    });
    open = h('button', { type: 'button', class: 'primary', 'data-test': 'quota-open',
      onclick: () => { form.hidden = false; name.focus(); } }, '+ Set quota');
  }
  main.append(pageHead('Client quotas', { right: open }), form, panel(null, table.el));
  async function load() {
    const d = await api('GET', '/quotas');
    if (!ctx.alive) return;
    data = d.quotas.flatMap((q) => Object.keys(q.values).sort().map((k) => ({ entity: q.entity, key: k, value: q.values[k] })));
    table.set(data);
  }
  ctx.poll(load);
}

/* ---------- header, session, router ---------- */

function renderHeader() {
  const who = $('#who');
  const info = muted(`node ${session.node ?? '?'} \u00b7 v${session.version ?? '?'}`);
  who.replaceChildren(info);
  if (session.user) {
    who.append(h('span', { class: 'user', 'data-test': 'user' }, session.user),
      h('a', { href: '#/login', 'data-test': 'logout', onclick: (e) => { e.preventDefault(); logout(); } }, 'Log out'));
  }
  $('#banner').replaceChildren(session.readOnly
    ? h('div', { class: 'banner', 'data-test': 'read-only' }, h('b', 'Read-only console. '), session.readOnlyReason || '')
    : '');
}

async function loadSession() {
  session = await api('GET', '/session');
  renderHeader();
}

async function logout() {
  try {
    await api('POST', '/logout');
    await loadSession();
    flash('Signed out');
    go(session.authRequired ? '#/login' : '#/');
  } catch (e) { showError(e); }
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// A view's context: alive until the route changes; poll(fn) runs fn now and again 3 s after each run.
function newContext() {
  const c = {
    alive: true,
    timers: [],
    stop() { c.alive = false; c.timers.forEach(clearTimeout); },
    poll(fn) {
      let saved = null, errId = 0; // the flash before a poll error, put back once polling works again
      const loop = async () => {
        if (!c.alive) return;
        try {
          await fn();
          if (saved && errId === flashId) flashRestore(saved);
          saved = null;
        } catch (e) {
          if (!c.alive) return;
          if (!saved) saved = flashSnapshot();
          errId = flash(e.message, 'error');
        }
        if (c.alive) c.timers.push(setTimeout(loop, POLL_MS));
      };
      loop();
    },
  };
  return c;
}

const routes = [
  [/^\/$/, viewOverview, 'overview'],
  [/^\/brokers\/([^/]+)$/, viewBroker, 'overview'],
  [/^\/quorum$/, viewQuorum, 'quorum'],
  [/^\/topics$/, viewTopics, 'topics'],
  [/^\/topics\/([^/]+)$/, viewTopic, 'topics'],
  [/^\/topics\/([^/]+)\/records$/, viewRecords, 'topics'],
  [/^\/groups$/, viewGroups, 'groups'],
  [/^\/groups\/([^/]+)$/, viewGroup, 'groups'],
  [/^\/acls$/, viewAcls, 'acls'],
  [/^\/quotas$/, viewQuotas, 'quotas'],
  [/^\/login$/, viewLogin, ''],
];

function route() {
  if (ctx) ctx.stop();
  const path = location.hash.replace(/^#/, '') || '/';
  if (session.authRequired && !session.user && path !== '/login') { go('#/login'); return; }
  if (Date.now() - flashAt > 3000) $('#flash').hidden = true; // keep only a message that led here
  ctx = newContext();
  const main = $('#view');
  main.replaceChildren();
  window.scrollTo(0, 0);
  const navTo = (section) => document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.dataset.section === section));
  for (const [re, view, section] of routes) {
    const m = path.match(re);
    if (!m) continue;
    let args;
    try { args = m.slice(1).map(decodeURIComponent); } catch (_) { break; }
    navTo(section);
    view(main, ctx, ...args);
    return;
  }
  navTo('');
  document.title = 'Not found \u00b7 Brook';
  main.append(pageHead('Not found'), panel(null, h('div', { class: 'body' }, 'No page at ', h('code', path), '. ', h('a', { href: '#/' }, 'Go to the overview'), '.')));
}

async function boot() {
  $('#flash').addEventListener('click', (e) => { e.currentTarget.hidden = true; });
  try { await loadSession(); } catch (e) { renderHeader(); showError(e); }
  window.addEventListener('hashchange', route);
  route();
}

boot();
