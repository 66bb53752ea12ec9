// The dashboard page: state from /api/* at load, then deltas over /ws (polling /api/* every
// second when the WebSocket is unavailable). window.treepoDashboard exposes the state that was
// rendered last (the browser test compares it with /api/cluster).
'use strict';

const $ = (s) => document.querySelector(s);
const fmt = (v, d = 1) => (v === undefined || v === null || Number.isNaN(v)) ? '-' : Number(v).toFixed(d);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));

const state = {
  cluster: null,        // last /api/cluster-shaped document
  events: [],           // all events seen, oldest first
  metrics: [],          // metric lines
  trees: new Map(),     // key -> {summary, nodes: Map}
  selectedTree: null, selectedNode: null,
  view: 'cluster', charts: [], dirty: {cluster: true, trees: true, charts: true},
};
window.treepoDashboard = state;

// ---------- views ----------
for (const b of document.querySelectorAll('nav button')) {
  b.addEventListener('click', () => showView(b.dataset.view));
}
function showView(v) {
  state.view = v;
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('active', b.dataset.view === v);
  for (const s of document.querySelectorAll('.view')) s.classList.toggle('active', s.id === 'view-' + v);
  state.dirty[v === 'training' ? 'charts' : v] = true;
  if (v === 'training') { for (const c of state.charts) c.plot.setSize(chartSize(c.div)); }
  schedule();
}

// ---------- cluster ----------
function renderCluster() {
  const c = state.cluster;
  if (!c) return;
  const s = c.scheduler, rl = c.rl;
  $('#run-name').textContent = c.run ? `${c.run} · up ${fmt(c.uptime_s, 0)} s` : '';
  $('#stat-live-workers').textContent = s.live_workers;
  $('#stat-queue').textContent = s.queue_depth;
  $('#stat-in-flight').textContent = s.in_flight;
  $('#stat-tasks-per-s').textContent = fmt(s.tasks_per_s);
  $('#stat-tokens-per-s').textContent = fmt(s.tokens_per_s, 0);
  $('#stat-weight-version').textContent = 'v' + s.weight_version;
  $('#stat-step').textContent = rl.active ? `${rl.step + 1} / ${rl.steps_total}` : '-';
  $('#stat-reward').textContent = rl.active && rl.step >= 0 ? fmt(rl.reward_mean, 3) : '-';
  $('#stat-segments').textContent = s.segments;
  $('#stat-latency').textContent = c.latency.count ? fmt(1000 * c.latency.sum_s / c.latency.count, 0) + ' ms' : '-';
  const rows = c.workers.map((w) => {
    const used = w.pages_used, cap = Math.max(1, w.pages_capacity);
    return `<tr data-worker-id="${w.id}"><td class="id">${w.id}</td>` +
      `<td class="name"><i style="display:inline-block;width:9px;height:9px;border-radius:50%;background:${TreeView.workerColour(w.id)}"></i> ${esc(w.name)}</td>` +
      `<td><span class="state ${w.state}">${w.state}</span></td>` +
      `<td class="ver">v${w.weight_version}</td>` +
      `<td class="kvcell"><span class="kv"><i style="width:${(100 * used / cap).toFixed(1)}%"></i></span>` +
      `<span class="pages">${used}/${w.pages_capacity}</span></td>` +
      `<td class="inflight">${w.in_flight_tasks}</td><td>${fmt(w.tasks_per_s)}</td><td>${fmt(w.tokens_per_s, 0)}</td>` +
      `<td class="segments">${w.segments_done}</td><td>${fmt(100 * w.busy_fraction, 0)}%</td>` +
      `<td>${w.state === 'dead' || w.state === 'fenced' ? '-' : fmt(w.heartbeat_age_ms / 1000, 1) + ' s ago'}</td></tr>`;
  });
  $('#workers tbody').innerHTML = rows.join('');
  $('#learners tbody').innerHTML = c.learners.map((l) =>
    `<tr data-learner-id="${l.id}"><td>${l.id}</td><td>${esc(l.name)}</td><td>${l.rank}/${l.world_size}</td>` +
    `<td>${fmt(l.step_s, 2)} s</td><td>${fmt(l.sync_s, 2)} s</td></tr>`).join('');
  const ev = state.events.slice(-200).reverse();
  $('#events').innerHTML = ev.map((e) =>
    `<li><span class="t">${new Date(e.unix_ms).toLocaleTimeString()}</span><span class="kind">${esc(e.kind)}</span>${esc(e.text)}</li>`).join('');
  const h = c.latency, max = Math.max(1, ...h.counts);
  $('#latency').innerHTML = h.counts.map((n, i) => {
    const label = i < h.upper_bounds_s.length ? '≤ ' + (h.upper_bounds_s[i] < 1 ? 1000 * h.upper_bounds_s[i] + ' ms' : h.upper_bounds_s[i] + ' s') : '> ' + h.upper_bounds_s[h.upper_bounds_s.length - 1] + ' s';
    return `<div class="hbar"><span>${label}</span><i style="width:${(200 * n / max).toFixed(0)}px"></i><span>${n}</span></div>`;
  }).join('');
  const rej = Object.entries(s.rejected_frames || {}).map(([k, v]) => `${esc(k)} ${v}`).join(', ') || 'none';
  $('#frames').innerHTML = `received ${s.frames_in} · rejected: ${rej} · stale ${s.stale_messages}<br>` +
    `dead workers ${s.dead_workers} · fenced ${s.fenced_workers} · re-dispatched tasks ${s.redispatched_tasks} · late ${s.late_tasks}<br>` +
    `tokens decoded ${s.tokens_decoded} · prefilled ${s.tokens_prefilled} · recomputed ${s.tokens_recomputed} · ` +
    `KV migrations ${s.kv_migrations} (${s.kv_bytes_migrated} B) · evictions ${s.kv_evictions}`;
  if (c.config) {
    $('#config tbody').innerHTML = Object.entries(c.config).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('');
  }
}

// ---------- trees ----------
function treeLabel(t) {
  const s = t.summary;
  const head = (s.step >= 0 ? `step ${s.step} · ` : '') + `q${s.index}` + (s.query_id ? ` (${esc(s.query_id)})` : '');
  return s.finished ? `${head} · r̄ ${fmt(s.reward_mean, 2)}` : `${head} · ${s.nodes} nodes, ${s.pending} pending`;
}

function renderTreeList() {
  const all = [...state.trees.values()];
  const running = all.filter((t) => !t.summary.finished).sort((a, b) => b.summary.key - a.summary.key);
  const finished = all.filter((t) => t.summary.finished).sort((a, b) => b.summary.key - a.summary.key);
  const cur = state.trees.get(state.selectedTree);
  // Following: stay on a growing tree until it finishes, then move to the newest one.
  if ($('#follow').checked && running.length && (!cur || cur.summary.finished)) {
    selectTree(running[0].summary.key, false);
  }
  if (state.selectedTree === null && (running.length || finished.length)) {
    selectTree((running[0] || finished[0]).summary.key, false);
  }
  const li = (t) => `<li data-key="${t.summary.key}" class="${t.summary.key === state.selectedTree ? 'sel' : ''}">${treeLabel(t)}</li>`;
  $('#trees-running').innerHTML = running.map(li).join('') || '<li class="hint">none</li>';
  $('#trees-finished').innerHTML = finished.map(li).join('') || '<li class="hint">none</li>';
}
for (const id of ['#trees-running', '#trees-finished']) {
  $(id).addEventListener('click', (e) => {
    const li = e.target.closest('li[data-key]');
    if (!li) return;
    $('#follow').checked = false;
    selectTree(Number(li.dataset.key), true);
  });
}

function selectTree(key, fetchText) {
  state.selectedTree = key;
  state.selectedNode = null;
  $('#node-detail').classList.add('hidden');
  state.dirty.trees = true;
  if (fetchText) loadTree(key);
  schedule();
}

async function loadTree(key) {
  const r = await api('/api/trees/' + key);
  if (!r) return null;
  const nodes = new Map(r.tree.map((n) => [n.id, n]));
  const t = state.trees.get(key) || {summary: r, nodes};
  t.summary = Object.assign({}, t.summary, r);
  if (r.finished || nodes.size >= t.nodes.size) t.nodes = nodes;
  t.full = r;
  state.trees.set(key, t);
  state.dirty.trees = true;
  schedule();
  return r;
}

function renderTree() {
  renderTreeList();
  const t = state.trees.get(state.selectedTree);
  const svg = $('#tree-svg');
  if (!t) { $('#tree-head').textContent = 'No query yet.'; return; }
  const s = t.summary;
  $('#tree-head').innerHTML = `<b>${treeLabel(t)}</b> — ${t.nodes.size} nodes` +
    (s.finished ? `, ${s.leaves} leaves, mean reward ${fmt(s.reward_mean, 3)}` : ' (growing)') +
    (t.full && t.full.prompt ? `<br><span class="hint">prompt:</span> ${esc(t.full.prompt.slice(0, 300))}` : '');
  const workers = new Set([...t.nodes.values()].map((n) => n.worker).filter((w) => w));
  $('#legend').innerHTML = [...workers].sort((a, b) => a - b).map((w) =>
    `<span><i style="background:${TreeView.workerColour(w)}"></i>worker ${w}</span>`).join('') +
    '<span><i style="background:#fff;border:1px dashed #a0aec0"></i>pending</span><span>✓/✗ leaf reward</span><span>✂ cut path</span>';
  TreeView.draw(svg, t.nodes, state.selectedNode, (id) => showNode(state.selectedTree, id));
  svg.dataset.nodes = t.nodes.size;
}

async function showNode(key, id) {
  state.selectedNode = id;
  state.dirty.trees = true;
  schedule();
  const r = await loadTree(key);
  if (!r) return;
  const byId = new Map(r.tree.map((n) => [n.id, n]));
  const n = byId.get(id);
  if (!n) return;
  const path = [];
  for (let p = n; p; p = byId.get(p.parent)) path.unshift(p);
  const d = $('#node-detail');
  d.classList.remove('hidden');
  d.innerHTML = `<b>node ${n.id}</b> · depth ${n.depth} · ` + (n.pending ? 'pending' : `worker ${n.worker} · weights v${n.version} · ${n.tokens} tokens`) +
    (n.finish ? ` · ${esc(n.finish)}` : '') + (n.leaf ? ` · reward ${fmt(n.reward, 3)}` : '') + (n.pruned ? ' · cut' : '') +
    `<pre>${esc(n.text || '')}</pre><div class="path">path: <pre>${esc(path.map((p) => p.text || '').join(''))}</pre></div>`;
}

// ---------- training charts ----------
const CHARTS = [
  {title: 'Reward (mean over leaves)', series: [['reward_mean', '#2b6cb0']]},
  {title: 'Accuracy: rollout and held-out eval', series: [['accuracy', '#2f855a'], ['eval_accuracy', '#d69e2e']]},
  {title: 'Tokens/s (rollout)', series: [['tokens_per_s', '#805ad5']]},
  {title: 'Policy: ratio, clip fraction, KL', series: [['ratio_mean', '#2b6cb0'], ['clip_fraction', '#e53e3e'], ['kl_mean', '#38a169']]},
  {title: 'Entropy', series: [['entropy_mean', '#dd6b20']]},
  {title: 'Computed / unique tree tokens', series: [['computed_per_unique', '#319795']]},
  {title: 'Loss', series: [['loss', '#4a5568']]},
  {title: 'Step time: rollout, train, weight sync (s)', series: [['rollout_s', '#3182ce'], ['train_s', '#e53e3e'], ['sync_s', '#38a169']]},
];
// Each chart fills its grid cell (the cells size themselves to the window).
function chartSize(div) {
  const cell = div || document.querySelector('#charts .chart');
  return {width: Math.max(300, (cell ? cell.clientWidth : 440) - 14), height: 220};
}

function metricValue(line, key) {
  if (key === 'computed_per_unique') {
    if (line.computed_over_unique !== undefined) return line.computed_over_unique;
    return line.unique_tree_tokens ? line.tokens_computed / line.unique_tree_tokens : null;
  }
  return line[key] === undefined ? null : line[key];
}

function chartData(spec) {
  const steps = new Map();
  for (const m of state.metrics) {
    const step = m.step;
    if (step === undefined) continue;
    if (!steps.has(step)) steps.set(step, {});
    const row = steps.get(step);
    if (m.eval) { row.eval_accuracy = m.eval.accuracy; continue; }
    for (const [k] of spec.series) if (k !== 'eval_accuracy') { const v = metricValue(m, k); if (v !== null) row[k] = v; }
  }
  const xs = [...steps.keys()].sort((a, b) => a - b);
  return [xs, ...spec.series.map(([k]) => xs.map((x) => steps.get(x)[k] ?? null))];
}

function renderCharts() {
  if (typeof uPlot === 'undefined') { $('#charts-missing').classList.remove('hidden'); return; }
  if (!state.charts.length) {
    for (const spec of CHARTS) {
      const div = document.createElement('div');
      div.className = 'chart';
      div.innerHTML = `<h4>${spec.title}</h4>`;
      $('#charts').appendChild(div);
      const opts = Object.assign(chartSize(div), {
        scales: {x: {time: false}},
        axes: [{label: 'step'}, {}],
        series: [{label: 'step'}, ...spec.series.map(([k, colour]) => ({label: k, stroke: colour, width: 2, spanGaps: true, points: {show: true, size: 4}}))],
        cursor: {drag: {x: true, y: false}},
      });
      state.charts.push({spec, div, plot: new uPlot(opts, chartData(spec), div)});
    }
    return;
  }
  for (const c of state.charts) c.plot.setData(chartData(c.spec));
}

// ---------- data ----------
let token = new URLSearchParams(location.search).get('token');
async function api(path) {
  try {
    const r = await fetch(path, {headers: token ? {Authorization: 'Bearer ' + token} : {}, cache: 'no-store'});
    if (!r.ok) return null;
    return await r.json();
  } catch (e) { return null; }
}

function applyCluster(c) {
  state.cluster = Object.assign({}, state.cluster || {}, c);
  state.dirty.cluster = true;
}

function applyDelta(d) {
  applyCluster(d.cluster);
  for (const e of d.events) state.events.push(e);
  if (state.events.length > 1000) state.events.splice(0, state.events.length - 1000);
  if (d.metrics.length) { for (const m of d.metrics) state.metrics.push(m); state.dirty.charts = true; }
  for (const k of d.removed_trees) state.trees.delete(k);
  for (const t of d.trees) {
    let cur = state.trees.get(t.key);
    // A finishing tree sends its new and changed nodes (leaves, cut paths); the rest stay.
    if (!cur) { cur = {summary: t, nodes: new Map()}; state.trees.set(t.key, cur); }
    cur.summary = t;
    for (const n of t.changed_nodes) cur.nodes.set(n.id, Object.assign(cur.nodes.get(n.id) || {}, n));
    if (t.key === state.selectedTree && cur.full && t.finished && !cur.full.finished) loadTree(t.key);
  }
  if (d.trees.length || d.removed_trees.length) state.dirty.trees = true;
  state.seq = d.seq;
}

function setConn(up, text) {
  const c = $('#conn');
  c.className = 'conn ' + (up ? 'up' : 'down');
  c.textContent = text;
}

let pollTimer = null;
async function poll() {
  const [c, q, m] = await Promise.all([api('/api/cluster'), api('/api/queries'), api('/api/metrics?since=' + state.metrics.length)]);
  if (!c) { setConn(false, 'scheduler unreachable'); return; }
  setConn(true, 'polling');
  state.events = c.events;
  applyCluster(c);
  if (m) { for (const l of m.lines) state.metrics.push(l); if (m.lines.length) state.dirty.charts = true; }
  if (q) {
    const keep = new Set([...q.running, ...q.finished].map((s) => s.key));
    for (const k of [...state.trees.keys()]) if (!keep.has(k)) state.trees.delete(k);
    for (const s of [...q.running, ...q.finished]) {
      const t = state.trees.get(s.key) || {summary: s, nodes: new Map()};
      t.summary = s; state.trees.set(s.key, t);
    }
    if (state.selectedTree !== null) await loadTree(state.selectedTree);
    state.dirty.trees = true;
  }
  schedule();
}

function connect() {
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws' + (token ? '?token=' + encodeURIComponent(token) : '');
  let ws;
  try { ws = new WebSocket(url); } catch (e) { return startPolling(); }
  let opened = false;
  ws.onopen = () => { opened = true; setConn(true, 'live'); if (pollTimer) { clearInterval(pollTimer); pollTimer = null; } };
  ws.onmessage = (e) => {
    const d = JSON.parse(e.data);
    if (d.since === 0) { state.events = []; state.metrics = []; state.trees.clear(); state.dirty.charts = true; }
    applyDelta(d);
    schedule();
  };
  ws.onclose = () => {
    setConn(false, opened ? 'reconnecting' : 'polling');
    startPolling();
    setTimeout(connect, 3000);
  };
}
function startPolling() { if (!pollTimer) { pollTimer = setInterval(poll, 1000); poll(); } }

// ---------- render loop ----------
let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    if (state.dirty.cluster) { renderCluster(); state.dirty.cluster = false; state.renderedSeq = state.cluster && state.cluster.seq; }
    if (state.view === 'trees' && state.dirty.trees) { renderTree(); state.dirty.trees = false; }
    if (state.view === 'training' && state.dirty.charts) { renderCharts(); state.dirty.charts = false; }
  });
}

(async () => {
  const [c, m] = await Promise.all([api('/api/cluster'), api('/api/metrics?since=0')]);
  if (c) { state.events = c.events; applyCluster(c); }
  if (m) state.metrics = m.lines;
  if (location.hash) showView(location.hash.slice(1));
  schedule();
  connect();
})();
window.addEventListener('hashchange', () => showView(location.hash.slice(1) || 'cluster'));
window.addEventListener('resize', () => { for (const c of state.charts) c.plot.setSize(chartSize(c.div)); });
