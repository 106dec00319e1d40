// Providers: status, type, model count, last sync and its result, usage; add, edit, disable/enable, sync.
// Adding and editing are PATCH /admin/providers/{name} (a provider is added when `plugin` is given).
import { call, get } from '../api.js';
import { badge, clear, field, formValues, h, num, table, toast, usd, when } from '../dom.js';

const PLUGINS = ['openai_compatible', 'openrouter', 'aihubmix', 'openai', 'anthropic'];

function syncCell(p) {
  const s = p.sync_status || {};
  if (!s.last_run) return h('span', { class: 'muted' }, 'never');
  const result = s.last_error
    ? badge('failed', 'bad')
    : badge(`ok: +${s.added ?? 0} ~${s.changed ?? 0} -${s.removed ?? 0}`, 'good');
  return h('span', {}, when(s.last_run), ' ', result, s.last_error ? h('div', { class: 'small error' }, s.last_error) : null);
}

function clean(values) {
  const body = {};
  for (const [k, v] of Object.entries(values)) if (v !== '') body[k] = v;
  return body;
}

function editForm(p, refresh) {
  const form = h('form', { class: 'inline-form', 'data-provider': p.name },
    field('Base URL', h('input', { name: 'base_url', value: p.base_url || '' })),
    field('API key (${VAR} reference)', h('input', { name: 'api_key', placeholder: '${PROVIDER_API_KEY}' })),
    h('button', { type: 'submit' }, 'Save'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await call('PATCH', `/admin/providers/${encodeURIComponent(p.name)}`, clean(formValues(form)));
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
  const addForm = h('form', { id: 'add-provider', class: 'inline-form' },
    field('Name', h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]*' })),
    field('Plugin', h('select', { name: 'plugin' }, PLUGINS.map((p) => h('option', { value: p }, p)))),
    field('Base URL', h('input', { name: 'base_url', placeholder: 'https://…/v1' })),
    field('API key (${VAR} reference)', h('input', { name: 'api_key', placeholder: '${PROVIDER_API_KEY}' })),
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
      { title: 'Models', value: (p) => num(p.models), class: 'num models' },
      { title: 'Last sync', value: syncCell },
      { title: 'Requests (30 d)', value: (p) => num(p.usage?.requests), class: 'num' },
      { title: 'Errors', value: (p) => num(p.usage?.errors), class: 'num' },
      { title: 'Spend', value: (p) => usd(p.usage?.cost_micro_usd), class: 'num' },
      { title: '', value: (p) => h('div', {}, actions(p, refresh, (name) => { open = open === name ? null : name; refresh(); }),
        open === p.name ? editForm(p, refresh) : null) },
    ], data, { id: 'providers-table', empty: 'No providers.' });
    clear(list, rows);
    for (const [i, p] of data.entries()) {
      const tr = list.querySelectorAll('tbody tr')[i];
      if (tr) tr.dataset.provider = p.name;
    }
  };
  addForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const { name, ...rest } = clean(formValues(addForm));
    try {
      await call('PATCH', `/admin/providers/${encodeURIComponent(name)}`, rest);
      toast(`Added ${name}.`);
      addForm.reset();
      await refresh();
    } catch (err) { toast(err.message, 'bad'); }
  });
  main.append(list, h('h3', {}, 'Add a provider'), addForm,
    h('p', { class: 'muted small' }, 'API keys are references to the gateway\'s environment (${VAR}); '
      + 'the secret itself never passes through the dashboard.'));
  await refresh();
}
