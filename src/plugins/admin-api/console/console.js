// The tiproxy web console: polls this proxy's admin API (docs/api.md) and renders it as tables.
// Plain browser JavaScript, no dependencies; every value is put into the page as text (never as HTML),
// since session fields come from clients.

const POLL_MS = 1500;
const TOKEN_KEY = 'tiproxy-api-token';
const RECENT_MIGRATIONS_SHOWN = 25;

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

const badge = (text, tone, title) => el('span', { class: `badge ${tone}`, title }, text);
const cell = (...content) => el('td', {}, ...content);
const num = (...content) => el('td', { class: 'num' }, ...content);
const time = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });

function fillBody(table, rows, emptyText) {
  const body = $(table).tBodies[0];
  const columns = $(table).tHead.rows[0].cells.length;
  body.replaceChildren(...(rows.length ? rows : [el('tr', { class: 'empty' }, el('td', { colspan: columns }, emptyText))]));
}

// ---- the API ----

const token = () => sessionStorage.getItem(TOKEN_KEY) ?? '';

async function getJson(path) {
  const res = await fetch(path, { headers: { accept: 'application/json' } });
  const body = await res.json().catch(() => null);
  return { status: res.status, body };
}

/** A change (POST): sent with the token when there is one. */
async function change(path) {
  const headers = { accept: 'application/json' };
  if (token()) headers.authorization = `Bearer ${token()}`;
  const res = await fetch(path, { method: 'POST', headers });
  const body = await res.json().catch(() => null);
  return { status: res.status, body };
}

// ---- notices (the outcome of a button) ----

function notify(text, tone) {
  const n = $('notice');
  n.className = tone;
  n.replaceChildren(el('span', {}, text), el('button', { type: 'button', class: 'close', title: 'Dismiss', onclick: () => { n.hidden = true; } }, '×'));
  n.hidden = false;
}

// ---- token ----

function showTokenState() {
  $('token-state').textContent = token() ? 'token set for this tab' : 'no token: read-only';
  $('token-form').classList.remove('refused');
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const value = $('token').value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  $('token').value = '';
  showTokenState();
});
$('token-forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showTokenState();
});

// ---- actions ----

async function setDraining(addr, drain) {
  const verb = drain ? 'drain' : 'undrain';
  if (drain && !confirm(`Drain ${addr}? No new sessions go there, and its sessions move to other backends.`)) return;
  try {
    const r = await change(`/api/backends/${encodeURIComponent(addr)}/${verb}`);
    if (r.status === 200) {
      notify(drain ? `Draining ${addr}: its ${r.body.sessions} session(s) move away at their next safe point.` : `${addr} takes new sessions again.`, 'ok');
    } else if (r.status === 401) {
      $('token-form').classList.add('refused');
      notify(`401 Unauthorized: ${verb} ${addr} refused — ${r.body?.error ?? 'a bearer token is needed'}. Enter the API token (api.token) above.`, 'bad');
    } else {
      notify(`${verb} ${addr} failed (${r.status}): ${r.body?.error ?? 'no reason given'}`, 'bad');
    }
  } catch (err) {
    notify(`${verb} ${addr} failed: ${err.message}`, 'bad');
  }
  refresh();
}

// ---- sections ----

function renderHealth({ status, body }) {
  const h = $('proxy-health');
  if (status === 200) {
    h.replaceChildren('healthy');
    h.className = 'badge good';
    h.title = `config checksum ${body.config_checksum}`;
  } else {
    h.replaceChildren(`unhealthy: ${body?.unhealthy_reason ?? status}`);
    h.className = 'badge bad';
    h.title = 'GET /api/debug/health answers 502: load balancers take this proxy out';
  }
}

function renderBackends(backends) {
  $('backends-count').textContent = `${backends.length} · ${backends.filter((b) => b.healthy && !b.draining).length} take new sessions`;
  const rows = [...backends].sort((a, b) => a.addr.localeCompare(b.addr)).map((b) => {
    const labels = Object.entries(b.labels).map(([k, v]) => el('span', { class: 'label' }, `${k}=${v}`));
    const state = b.draining ? badge('draining', 'warn', 'No new sessions; its sessions move away') : b.healthy ? badge('routable', 'good') : badge('out', 'bad', 'Unhealthy: no new sessions');
    const action = b.draining
      ? el('button', { type: 'button', onclick: () => setDraining(b.addr, false) }, 'Undrain')
      : el('button', { type: 'button', class: 'danger', onclick: () => setDraining(b.addr, true) }, 'Drain');
    return el('tr', { 'data-addr': b.addr, class: b.draining ? 'draining' : b.healthy ? '' : 'unhealthy' },
      cell(el('span', { class: 'mono' }, b.addr), b.server_version ? el('div', { class: 'muted small' }, b.server_version) : null),
      cell(b.healthy ? badge('healthy', 'good') : badge('unhealthy', 'bad'), b.health_reason ? el('div', { class: 'muted small' }, b.health_reason) : null),
      cell(state, b.drain_mark ? el('div', { class: 'muted small', title: b.drain_mark.reason ?? '' }, `fleet-wide, by ${b.drain_mark.by}`) : null),
      cell(labels.length ? labels : el('span', { class: 'muted' }, '—')),
      num(b.sessions), num(b.qps.toFixed(1)), num(b.p99_ms === null ? '—' : b.p99_ms.toFixed(2)),
      el('td', { class: 'actions' }, action));
  });
  fillBody('backends', rows, 'No backend known (check discovery).');
}

const RESULT_TONE = { succeeded: 'good', vetoed: 'warn', failed: 'bad' };

function renderMigrations({ pending, running, recent }) {
  const counts = recent.reduce((n, m) => ({ ...n, [m.result]: (n[m.result] ?? 0) + 1 }), {});
  $('migrations-summary').textContent = [`${running.length} running`, `${pending.length} pending`,
    ...Object.entries(counts).map(([result, n]) => `${n} ${result}`)].join(' · ');
  const inFlight = [...running.map((m) => ({ ...m, state: 'running' })), ...pending.map((m) => ({ ...m, state: 'pending' }))].map((m) =>
    el('tr', { class: 'in-flight' },
      cell(el('span', { class: 'muted' }, m.state === 'pending' ? `requested ${time(m.requested_at)}` : 'now')), num(m.session),
      cell(el('span', { class: 'mono' }, `${m.from ?? '?'} → ${m.to ?? 'balancer picks'}`)), cell(m.reason),
      cell(badge(m.state, 'info')), num('—'), cell(m.waiting_for ? `waiting for: ${m.waiting_for}` : '')));
  const done = recent.slice(0, RECENT_MIGRATIONS_SHOWN).map((m) =>
    el('tr', { 'data-session': m.session, 'data-result': m.result },
      cell(time(m.at)), num(m.session), cell(el('span', { class: 'mono' }, `${m.from} → ${m.to}`)), cell(m.reason),
      cell(badge(m.result, RESULT_TONE[m.result] ?? 'info')), num(m.duration_ms.toFixed(1)),
      cell(m.error ?? '', m.retry ? el('span', { class: 'muted' }, ' (will retry)') : null)));
  fillBody('migrations', [...inFlight, ...done], 'No migration yet.');
}

let lastSessions = [];
/** Every backend's address, for the sessions' backend filter. */
let knownBackends = [];

/** Keeps a filter <select>'s options in step with the values present, keeping the choice. */
function syncOptions(select, values, allText) {
  const chosen = select.value;
  const wanted = ['', ...[...new Set(values)].sort()];
  if (chosen && !wanted.includes(chosen)) wanted.push(chosen);
  const have = [...select.options].map((o) => o.value);
  if (have.join('\n') === wanted.join('\n')) return;
  select.replaceChildren(...wanted.map((v) => el('option', { value: v }, v || allText)));
  select.value = chosen;
}

function renderSessions() {
  const sessions = lastSessions;
  syncOptions($('session-user'), sessions.map((s) => s.user), 'every user');
  syncOptions($('session-backend'), [...knownBackends, ...sessions.map((s) => s.backend ?? '(none)')], 'every backend');
  const text = $('session-search').value.trim().toLowerCase();
  const user = $('session-user').value;
  const backend = $('session-backend').value;
  const shown = sessions.filter((s) => (!user || s.user === user) && (!backend || (s.backend ?? '(none)') === backend) &&
    (!text || [s.id, s.user, s.client, s.database, s.backend, s.not_migratable_reason, s.migration].some((v) => v !== null && String(v).toLowerCase().includes(text))));
  $('sessions-count').textContent = shown.length === sessions.length ? `${sessions.length}` : `${shown.length} of ${sessions.length}`;
  const rows = shown.sort((a, b) => a.id - b.id).map((s) =>
    el('tr', { 'data-session': s.id },
      num(s.id), cell(s.user), cell(el('span', { class: 'mono' }, s.client)), cell(s.database || el('span', { class: 'muted' }, '—')),
      cell(el('span', { class: 'mono' }, s.backend ?? '—')), num(formatAge(s.age_seconds)),
      cell(s.in_transaction ? badge('in txn', 'info') : ''),
      cell(s.migratable ? badge('yes', 'good') : badge(s.not_migratable_reason ?? 'no', 'warn')),
      cell(s.migration ? badge(s.migration, 'info') : ''), num(s.generation)));
  fillBody('sessions', rows, sessions.length ? 'No session matches the filter.' : 'No session.');
}

function formatAge(seconds) {
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

for (const id of ['session-search', 'session-user', 'session-backend']) $(id).addEventListener('input', renderSessions);

function renderPlugins(p) {
  $('generation').textContent = `generation ${p.generation.id}`;
  $('plugins-summary').textContent = `generation ${p.generation.id} since ${time(p.generation.created_at)}` +
    (p.generation.sessions_on_older ? ` · ${p.generation.sessions_on_older} session(s) on older generations` : '') +
    (p.reloads ? ` · reloads: ${p.reloads.succeeded} ok, ${p.reloads.failed} failed` : '');
  const problems = [];
  if (p.last_compile_error) {
    const e = p.last_compile_error;
    const where = e.file ? `${e.file}${e.line ? `:${e.line}${e.column ? `:${e.column}` : ''}` : ''}: ` : '';
    problems.push(el('div', { class: 'problem' }, el('strong', {}, `plugin-dir (${p.plugin_dir}) does not compile`), ` since ${time(e.at)}: ${where}${e.message}`));
  }
  if (p.reloads?.last_error) problems.push(el('div', { class: 'problem' }, el('strong', {}, 'last failed reload: '), p.reloads.last_error));
  $('plugin-errors').replaceChildren(...problems);
  const rows = p.plugins.map((x) => el('tr', { class: x.errors ? 'unhealthy' : '' },
    cell(el('span', { class: 'mono' }, x.name)), cell(x.version), num(x.errors ? badge(String(x.errors), 'bad') : '0')));
  fillBody('plugins', rows, 'No plugin.');
}

// ---- polling ----

let timer = null;
let polling = false;
let pollAgain = false;

/** One poll of every endpoint; a call while one runs (a button's outcome) polls again right after it. */
async function refresh() {
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  clearTimeout(timer);
  try {
    const [health, backends, migrations, sessions, plugins] = await Promise.all(
      ['/api/debug/health', '/api/backends', '/api/migrations', '/api/sessions', '/api/plugins'].map(getJson));
    renderHealth(health);
    if (backends.status === 200) {
      knownBackends = backends.body.map((b) => b.addr);
      renderBackends(backends.body);
    }
    if (migrations.status === 200) renderMigrations(migrations.body);
    if (sessions.status === 200) {
      lastSessions = sessions.body;
      renderSessions();
    }
    if (plugins.status === 200) renderPlugins(plugins.body);
    $('updated').textContent = `updated ${time(new Date().toISOString())}`;
    $('updated').className = 'muted';
  } catch (err) {
    $('updated').textContent = `API unreachable (${err.message}); retrying`;
    $('updated').className = 'badge bad';
  } finally {
    polling = false;
  }
  if (pollAgain) {
    pollAgain = false;
    refresh();
  } else {
    timer = setTimeout(refresh, POLL_MS);
  }
}

showTokenState();
refresh();
