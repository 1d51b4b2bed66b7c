// The swarm visualizer: the board from /ui/api/events (a `state`, then
// `delta`s), drawn as one column per node and a card per task. Plain DOM,
// no library; every text goes in through textContent.
'use strict';

const S = {
  index: 0,
  leader: null,
  access: 'read-only',
  nodes: new Map(),
  services: new Map(),
  tasks: new Map(),
};
let open = null; // the panel's subject: {kind: 'service' | 'node', id}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function take(snapshot) {
  S.index = snapshot.index;
  S.leader = snapshot.leader;
  S.access = snapshot.access;
  for (const kind of ['nodes', 'services', 'tasks']) {
    S[kind] = new Map(snapshot[kind].map((o) => [o.id, o]));
  }
}

function change(delta) {
  S.index = Math.max(S.index, delta.index);
  S.leader = delta.leader;
  for (const kind of ['nodes', 'services', 'tasks']) {
    for (const o of delta[kind]) S[kind].set(o.id, o);
  }
  for (const id of delta.removed) {
    S.nodes.delete(id);
    S.services.delete(id);
    S.tasks.delete(id);
  }
}

// Drawing waits a little, so that a burst of deltas draws once (the
// server sends at most one per 100 ms already).
let drawing = null;
function redraw() {
  if (drawing === null) drawing = setTimeout(() => { drawing = null; draw(); }, 150);
}

function hue(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return h % 360;
}
function colour(name) { return `hsl(${hue(name)}, 62%, 45%)`; }

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}
function when(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : ''; }
function short(id) { return id ? id.slice(0, 12) : ''; }
// A replicated task's slot is its number; a global task's, its node (an
// unassigned one has none yet: it is its own).
function slotKey(t) { return `${t.service_id}/${t.slot || t.node_id || t.id}`; }

// The cards: tasks that hold their slot, and the failed or rejected task
// that is its slot's latest (its error is what needs reading).
function shownTasks() {
  const latest = new Map();
  for (const t of S.tasks.values()) {
    const k = slotKey(t);
    const cur = latest.get(k);
    if (!cur || t.created_at > cur.created_at || (t.created_at === cur.created_at && t.id > cur.id)) {
      latest.set(k, t);
    }
  }
  const shown = [];
  for (const t of S.tasks.values()) {
    if (!S.services.has(t.service_id)) continue;
    const failed = (t.state === 'failed' || t.state === 'rejected') && latest.get(slotKey(t)) === t;
    if (t.active || failed) shown.push(t);
  }
  shown.sort((a, b) => a.service.localeCompare(b.service) || a.slot - b.slot || a.id.localeCompare(b.id));
  return shown;
}

function labelMatches(node, filter) {
  if (!filter) return true;
  const [key, value] = filter.includes('=') ? filter.split(/=(.*)/s, 2) : [filter, null];
  for (const labels of [node.labels, node.engine_labels]) {
    if (Object.prototype.hasOwnProperty.call(labels, key) && (value === null || labels[key] === value)) {
      return true;
    }
  }
  return false;
}

// Cards are made once per look of their task, and kept: a board of a
// thousand tasks redraws what changed, and moves the rest.
const cards = new Map(); // task id -> {look, card}
function card(t) {
  const look = `${t.state}|${t.error || ''}|${t.name}|${t.image}|${t.since}`;
  const kept = cards.get(t.id);
  if (kept && kept.look === look) {
    const when = kept.card.querySelector('.ago');
    const now = ago(t.since);
    if (when.textContent !== now) when.textContent = now;
    return kept.card;
  }
  const made = makeCard(t);
  cards.set(t.id, { look, card: made });
  return made;
}

function makeCard(t) {
  return el('div', {
    class: `task-card ${t.state}`,
    'data-task-id': t.id,
    'data-service': t.service,
    'data-state': t.state,
    style: `--svc: ${colour(t.service)}`,
    title: `${t.name} (${t.id})`,
    onclick: (e) => { e.stopPropagation(); show('service', t.service_id); },
  },
  el('div', { class: 'name' }, t.name),
  el('div', { class: 'image' }, t.image),
  el('div', { class: 'when' }, el('span', { class: 'state' }, t.state), ' · ', el('span', { class: 'ago' }, ago(t.since))),
  t.error ? el('div', { class: 'error' }, t.error) : null);
}

function column(node, tasks) {
  return el('section', {
    class: `node-column ${node.status} ${node.availability}`,
    'data-node-id': node.id,
    'data-hostname': node.hostname,
  },
  el('div', { class: 'node-head', onclick: () => show('node', node.id) },
    el('div', { class: 'hostname' }, node.hostname,
      S.leader === node.id ? el('span', { class: 'leader' }, 'leader') : null),
    el('div', { class: 'meta' }, node.role, ' · ', node.availability, ' · ',
      el('span', { class: `status-${node.status}` }, node.status)),
    Object.keys(node.labels).length
      ? el('div', { class: 'labels' }, Object.entries(node.labels).map(([k, v]) => `${k}=${v}`).join(' '))
      : null),
  tasks.map(card));
}

function drawFilters() {
  const select = document.getElementById('service-filter');
  const chosen = select.value;
  const names = [...S.services.values()].map((s) => s.name).sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  if (have.join('\n') !== names.join('\n')) {
    select.replaceChildren(el('option', { value: '' }, 'all'), ...names.map((n) => el('option', { value: n }, n)));
    select.value = names.includes(chosen) ? chosen : '';
  }
}

function draw() {
  drawFilters();
  const service = document.getElementById('service-filter').value;
  const label = document.getElementById('label-filter').value.trim();
  const nodes = [...S.nodes.values()].sort((a, b) =>
    (a.role === b.role ? 0 : a.role === 'manager' ? -1 : 1) || a.hostname.localeCompare(b.hostname));
  const byNode = new Map();
  let running = 0;
  let wanted = 0;
  for (const t of shownTasks()) {
    if (t.active) wanted += 1;
    if (t.active && t.state === 'running') running += 1;
    if (service && t.service !== service) continue;
    const key = t.node_id && S.nodes.has(t.node_id) ? t.node_id : '';
    if (!byNode.has(key)) byNode.set(key, []);
    byNode.get(key).push(t);
  }
  const columns = nodes.filter((n) => labelMatches(n, label)).map((n) => column(n, byNode.get(n.id) || []));
  const waiting = byNode.get('') || [];
  if (waiting.length) {
    columns.push(el('section', { class: 'node-column unassigned', 'data-node-id': '' },
      el('div', { class: 'node-head' },
        el('div', { class: 'hostname' }, 'unassigned'),
        el('div', { class: 'meta' }, 'waiting for a node')),
      waiting.map(card)));
  }
  for (const id of cards.keys()) if (!S.tasks.has(id)) cards.delete(id);
  const board = document.getElementById('board');
  board.replaceChildren(...(columns.length ? columns : [el('div', { class: 'empty' }, 'no node matches')]));
  document.getElementById('summary').textContent =
    `${S.nodes.size} nodes · ${S.services.size} services · ${running}/${wanted} tasks running`;
  document.getElementById('access').textContent = {
    'read-write': 'read-write (client certificate)',
    'read-only': 'read-only',
    public: 'public: no certificate, specs hidden',
  }[S.access] || S.access;
  if (open) drawPanel();
}

function table(head, rows) {
  return el('table', {},
    el('tr', {}, head.map((h) => el('th', {}, h))),
    rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c)))));
}

async function post(url, body, note) {
  note.textContent = '…';
  try {
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Swarm-UI': '1' },
      body: JSON.stringify(body),
    });
    const answer = await r.json().catch(() => ({}));
    note.textContent = r.ok ? 'done' : (answer.message || `failed (${r.status})`);
  } catch (e) {
    note.textContent = `failed: ${e}`;
  }
}

function servicePanel(s) {
  const tasks = [...S.tasks.values()].filter((t) => t.service_id === s.id)
    .sort((a, b) => a.slot - b.slot || b.created_at - a.created_at);
  const host = (id) => (S.nodes.get(id) || {}).hostname || short(id);
  const note = el('span', { class: 'note' });
  let actions = el('p', { class: 'note' }, 'read-only: open this page with a cluster client certificate to scale');
  if (S.access === 'read-write' && s.mode === 'replicated') {
    const n = el('input', { type: 'number', min: '0', value: String(s.replicas), style: 'width: 6em' });
    actions = el('div', { class: 'actions' }, 'replicas', n,
      el('button', { type: 'button', onclick: () => post(`/ui/api/services/${s.id}/scale`, { replicas: Number(n.value) }, note) }, 'scale'),
      note);
  }
  const u = s.update;
  return [
    el('h2', { style: `color: ${colour(s.name)}` }, s.name),
    el('p', {}, `${s.mode}${s.replicas === null ? '' : `, ${s.replicas} replicas`} · ${s.image}`),
    el('p', { class: 'note' }, `id ${s.id}`),
    actions,
    el('h3', {}, 'update status'),
    u ? table(['state', 'started', 'completed', 'message'], [[u.state, when(u.started_at), when(u.completed_at), u.message]])
      : el('p', { class: 'note' }, 'never updated'),
    el('h3', {}, 'tasks'),
    table(['name', 'id', 'node', 'desired', 'state', 'since', 'error'],
      tasks.map((t) => [t.name, short(t.id), host(t.node_id), t.desired, t.state, ago(t.since), t.error || ''])),
    el('h3', {}, 'spec'),
    s.spec === null
      ? el('p', { class: 'note' }, 'shown to clients with a cluster client certificate')
      : el('pre', {}, JSON.stringify(s.spec, null, 2)),
  ];
}

function nodePanel(n) {
  const tasks = [...S.tasks.values()].filter((t) => t.node_id === n.id)
    .sort((a, b) => b.created_at - a.created_at);
  const note = el('span', { class: 'note' });
  let actions = el('p', { class: 'note' }, 'read-only: open this page with a cluster client certificate to drain');
  if (S.access === 'read-write') {
    const pick = el('select', {}, ['active', 'pause', 'drain'].map((a) =>
      el('option', { value: a, selected: a === n.availability ? 'selected' : null }, a)));
    actions = el('div', { class: 'actions' }, 'availability', pick,
      el('button', { type: 'button', onclick: () => post(`/ui/api/nodes/${n.id}/availability`, { availability: pick.value }, note) }, 'apply'),
      note);
  }
  const labels = (l) => Object.entries(l).map(([k, v]) => `${k}=${v}`).join(', ') || '—';
  return [
    el('h2', {}, n.hostname, S.leader === n.id ? ' (leader)' : ''),
    table(['', ''], [
      ['id', n.id],
      ['role', n.role],
      ['availability', n.availability],
      ['status', n.message ? `${n.status}: ${n.message}` : n.status],
      ['address', n.addr],
      ['platform', n.platform],
      ['CPUs', (n.nano_cpus / 1e9).toFixed(2)],
      ['memory', `${(n.memory_bytes / 2 ** 30).toFixed(2)} GiB`],
      ['generic resources', n.generic_resources.join(', ') || '—'],
      ['labels', labels(n.labels)],
      ['engine labels', labels(n.engine_labels)],
    ]),
    actions,
    el('h3', {}, 'tasks'),
    table(['name', 'id', 'desired', 'state', 'since', 'error'],
      tasks.map((t) => [t.name, short(t.id), t.desired, t.state, ago(t.since), t.error || ''])),
  ];
}

function drawPanel() {
  const subject = open && (open.kind === 'service' ? S.services : S.nodes).get(open.id);
  const panel = document.getElementById('panel');
  if (!subject) {
    panel.hidden = true;
    open = null;
    return;
  }
  // Keep what the user is typing: redraw only when the panel is not in use.
  if (panel.contains(document.activeElement) && document.activeElement.tagName !== 'BUTTON') return;
  document.getElementById('panel-body').replaceChildren(
    ...(open.kind === 'service' ? servicePanel(subject) : nodePanel(subject)));
  panel.hidden = false;
}

function show(kind, id) {
  open = { kind, id };
  drawPanel();
}

function live(on, why) {
  const l = document.getElementById('live');
  l.textContent = on ? 'live' : (why || 'reconnecting');
  l.title = why || '';
  l.classList.toggle('off', !on);
}

// The server's reason when the stream cannot open (not a manager, too
// many pages): EventSource itself is never told.
async function reason() {
  for (const url of ['/ui/api/state', '/ui/api/events']) {
    const stop = new AbortController();
    try {
      const r = await fetch(url, { signal: stop.signal });
      if (!r.ok) return (await r.json()).message || `HTTP ${r.status}`;
    } catch (e) {
      return 'the manager cannot be reached';
    } finally {
      stop.abort(); // a stream that did open is not kept
    }
  }
  return null;
}

let retry = 1000;
function connect() {
  const events = new EventSource('/ui/api/events');
  events.addEventListener('state', (e) => { retry = 1000; take(JSON.parse(e.data)); live(true); redraw(); });
  events.addEventListener('delta', (e) => { change(JSON.parse(e.data)); redraw(); });
  events.addEventListener('gone', (e) => {
    events.close();
    live(false, JSON.parse(e.data).message);
    setTimeout(connect, retry);
  });
  events.addEventListener('error', async () => {
    // A dropped connection is retried by EventSource; an answer that is
    // no stream (a 503) closes it for good: retry here, with a backoff.
    if (events.readyState === EventSource.CLOSED) {
      live(false, await reason());
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    } else {
      live(false);
    }
  });
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('service-filter').addEventListener('change', draw);
  document.getElementById('label-filter').addEventListener('input', draw);
  document.getElementById('close').addEventListener('click', () => {
    open = null;
    document.getElementById('panel').hidden = true;
  });
  // "3 s ago" moves on.
  setInterval(redraw, 5000);
  connect();
});
