// Providers: status, type, model count, last sync and its result, usage; add, edit, disable/enable, sync.
// Adding and editing are PATCH /admin/providers/{name} (a provider is added when `plugin` is given).
import { call, get } from '../api.js';
import { badge, clear, field, formValues, h, num as count, table, toast, usd, when } from '../dom.js';

const PLUGINS = ['openai_compatible', 'openrouter', 'aihubmix', 'openai', 'anthropic'];

function syncCell(p) {
  const s = p.sync_status || {};
  if (!s.last_run) return h('span', { class: 'muted' }, 'never');
  const result = s.last_error
    ? badge('failed', 'bad')
    : badge(`ok: +${s.added ?? 0} ~${s.changed ?? 0} -${s.removed ?? 0}`, 'good');
  return h('span', {}, when(s.last_run), ' ', result, s.last_error ? h('div', { class: 'small error' }, s.last_error) : null);
}

const num = (v) => (v === '' || v === undefined ? undefined : Number(v));

// Every provider setting the API takes (PATCH /admin/providers/{name}). The key field takes a ${VAR}
// reference or the key itself: a pasted key is sealed in the gateway's vault and never shown again.
function settingsFields(p = {}) {
  const t = p.timeouts || {};
  const b = p.breaker || {};
  const sy = p.sync || {};
  const input = (name, value, extra = {}) => h('input', { name, value: value ?? '', ...extra });
  const keyHint = p.api_key === 'vault' ? 'stored in the vault (paste to replace)'
    : p.api_key ? `now ${p.api_key}` : 'sk-… or ${PROVIDER_API_KEY}';
  return [
    h('fieldset', {}, h('legend', {}, 'Connection'),
      field('Base URL', input('base_url', p.base_url, { class: 'wide', placeholder: 'https://…/v1' })),
      field('API key (pasted, or ${VAR})', h('input', { name: 'api_key', type: 'password', autocomplete: 'off',
        class: 'wide', placeholder: keyHint })),
      field('Extra headers (Name: value per line)', h('textarea', { name: 'headers', rows: 2,
        placeholder: (p.headers || []).length ? `now: ${p.headers.join(', ')} (values hidden)` : 'X-Title: my-app' })),
      field('Enabled', h('select', { name: 'enabled' }, [['true', 'yes'], ['false', 'no']].map(([v, l]) =>
        h('option', { value: v, selected: String(p.enabled ?? true) === v }, l)))),
      field('Tenants\' own keys (byok)', h('select', { name: 'byok' }, ['optional', 'required', 'never'].map((v) =>
        h('option', { value: v, selected: (p.byok || 'optional') === v }, v))))),
    h('fieldset', {}, h('legend', {}, 'Timeouts (seconds)'),
      field('Connect', input('t_connect', t.connect, { type: 'number', step: 'any', min: '0' })),
      field('First byte', input('t_first_byte', t.first_byte, { type: 'number', step: 'any', min: '0' })),
      field('Idle', input('t_idle', t.idle, { type: 'number', step: 'any', min: '0' })),
      field('Total', input('t_total', t.total, { type: 'number', step: 'any', min: '0' }))),
    h('fieldset', {}, h('legend', {}, 'Circuit breaker'),
      field('Failures', input('b_failures', b.failures, { type: 'number', min: '1' })),
      field('Cool-down (s)', input('b_cooldown', b.cooldown, { type: 'number', step: 'any', min: '0' }))),
    h('fieldset', {}, h('legend', {}, 'Catalogue sync'),
      field('Every (s, empty: manual)', input('s_every', sy.every, { type: 'number', step: 'any', min: '0' })),
      field('Grace (s)', input('s_grace', sy.grace, { type: 'number', step: 'any', min: '0' })),
      field('Timeout (s)', input('s_timeout', sy.timeout, { type: 'number', step: 'any', min: '0' }))),
  ];
}

function headersOf(text) {
  const out = {};
  for (const line of (text || '').split('\n')) {
    const at = line.indexOf(':');
    if (at > 0) out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

// The PATCH body: only what the form sets (an empty field leaves the setting as it is).
function settingsBody(v) {
  const body = {};
  for (const k of ['plugin', 'base_url', 'api_key', 'byok']) if (v[k]) body[k] = v[k];
  if (v.enabled) body.enabled = v.enabled === 'true';
  if ((v.headers || '').trim()) body.headers = headersOf(v.headers);
  const group = (prefix, names) => {
    const g = {};
    for (const n of names) if (num(v[prefix + n]) !== undefined) g[n] = num(v[prefix + n]);
    return Object.keys(g).length ? g : undefined;
  };
  const timeouts = group('t_', ['connect', 'first_byte', 'idle', 'total']);
  const breaker = group('b_', ['failures', 'cooldown']);
  const sync = group('s_', ['every', 'grace', 'timeout']);
  if (timeouts) body.timeouts = timeouts;
  if (breaker) body.breaker = breaker;
  if (sync) body.sync = sync;
  return body;
}

function keyCell(p) {
  if (p.api_key === 'vault') return badge('vault', 'good');
  return p.api_key ? h('code', {}, p.api_key) : h('span', { class: 'muted' }, 'none');
}

function editForm(p, refresh) {
  const form = h('form', { class: 'provider-form edit-provider', 'data-provider': p.name },
    ...settingsFields(p), h('button', { type: 'submit' }, 'Save'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await call('PATCH', `/admin/providers/${encodeURIComponent(p.name)}`, settingsBody(formValues(form)));
      toast(`Saved ${p.name}.`);
      await refresh();
    } catch (err) { toast(err.message, 'bad'); }
  });
  return form;
}

function actions(p, refresh, editing) {
  const path = `/admin/providers/${encodeURIComponent(p.name)}`;
  const run = (fn) => async () => {
    try { await fn(); await refresh(); } catch (err) { toast(err.message, 'bad'); }
  };
  return h('span', { class: 'actions' },
    h('button', { type: 'button', class: 'sync', onclick: run(async () => {
      const r = await call('POST', `${path}/sync`);
      toast(`Synced ${p.name}: ${r.added.length} added, ${r.changed.length} changed, ${r.removed.length} removed.`);
    }) }, 'Sync now'),
    h('button', { type: 'button', class: 'toggle', onclick: run(async () => {
      await call('PATCH', path, { enabled: !p.enabled });
      toast(`${p.name} ${p.enabled ? 'disabled' : 'enabled'}.`);
    }) }, p.enabled ? 'Disable' : 'Enable'),
    h('button', { type: 'button', class: 'edit', onclick: () => editing(p.name) }, 'Edit'));
}

export async function render(main) {
  const list = h('div');
  const addForm = h('form', { id: 'add-provider', class: 'provider-form' },
    h('fieldset', {}, h('legend', {}, 'Provider'),
      field('Name', h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]*' })),
      field('Plugin', h('select', { name: 'plugin' }, PLUGINS.map((p) => h('option', { value: p }, p))))),
    ...settingsFields(),
    h('button', { type: 'submit' }, 'Add provider'));
  let open = null;
  const refresh = async () => {
    const { data } = await get('/admin/providers');
    const rows = table([
      { title: 'Name', value: (p) => p.name, class: 'name' },
      { title: 'Type', value: (p) => badge(p.type, p.type) },
      { title: 'Plugin', value: (p) => p.plugin },
      { title: 'Status', value: (p) => (!p.enabled ? badge('disabled', 'bad')
        : p.serving ? badge('serving', 'good') : badge('not serving', 'warn')) },
      { title: 'Key', value: keyCell, class: 'key' },
      { title: 'Models', value: (p) => count(p.models), class: 'num models' },
      { title: 'Last sync', value: syncCell },
      { title: 'Requests (30 d)', value: (p) => count(p.usage?.requests), class: 'num' },
      { title: 'Errors', value: (p) => count(p.usage?.errors), class: 'num' },
      { title: 'Spend', value: (p) => usd(p.usage?.cost_micro_usd), class: 'num' },
      { title: '', value: (p) => actions(p, refresh, (name) => { open = open === name ? null : name; refresh(); }) },
    ], data, { id: 'providers-table', empty: 'No providers.' });
    const editing = data.find((p) => p.name === open);
    clear(list, rows, editing ? h('section', { class: 'card', id: 'edit-provider' },
      h('h3', {}, `Edit ${editing.name}`), editForm(editing, refresh)) : null);
    for (const [i, p] of data.entries()) {
      const tr = list.querySelectorAll('tbody tr')[i];
      if (tr) tr.dataset.provider = p.name;
    }
  };
  addForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = formValues(addForm);
    try {
      await call('PATCH', `/admin/providers/${encodeURIComponent(values.name)}`, settingsBody(values));
      toast(`Added ${values.name}.`);
      addForm.reset();
      await refresh();
    } catch (err) { toast(err.message, 'bad'); }
  });
  main.append(list, h('h3', {}, 'Add a provider'), addForm,
    h('p', { class: 'muted small' }, 'The API key is either a reference to the gateway\'s environment (${VAR}) '
      + 'or the key itself: a pasted key is sealed in the gateway\'s vault (secrets.master_keys), never shown '
      + 'again, and re-sealed by `efflux-gateway vault rewrap`.'));
  await refresh();
}
