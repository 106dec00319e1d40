// Tenants: budget use as bars with their alert thresholds, key budgets, and tenants' own provider keys.
import { call, get } from '../api.js';
import { badge, clear, field, formValues, h, progress, table, toast, when } from '../dom.js';

function bar(row) {
  return row ? progress(row.spent_micro_usd, row.budget_micro_usd, row.alert_at) : h('span', { class: 'muted' }, 'no budget');
}

async function providerKeys(tenant, refresh) {
  const rows = [];
  for (const provider of tenant.provider_keys) {
    const path = `/admin/tenants/${encodeURIComponent(tenant.name)}/provider-keys/${encodeURIComponent(provider)}`;
    rows.push({ provider, path, info: await get(path) });
  }
  return table([
    { title: 'Provider', value: (r) => r.provider },
    { title: 'Stored', value: (r) => when(r.info.updated_at) },
    { title: 'Valid', value: (r) => (r.info.validated === null || r.info.validated === undefined
      ? badge('unknown') : r.info.validated ? badge('valid', 'good') : badge('invalid', 'bad')) },
    { title: '', value: (r) => h('span', { class: 'actions' },
      h('button', { type: 'button', class: 'validate', onclick: async () => {
        try {
          const v = await call('POST', `${r.path}/validate`);
          toast(`${r.provider}: ${v.valid === true ? 'valid' : v.valid === false ? 'invalid' : 'could not tell'}${v.error ? ` (${v.error})` : ''}`,
            v.valid === false ? 'bad' : 'ok');
          await refresh();
        } catch (err) { toast(err.message, 'bad'); }
      } }, 'Validate'),
      h('button', { type: 'button', class: 'danger', onclick: async () => {
        try { await call('DELETE', r.path); await refresh(); } catch (err) { toast(err.message, 'bad'); }
      } }, 'Delete')) },
  ], rows, { empty: 'Uses the shared provider keys.' });
}

export async function render(main) {
  const body = h('div');
  const form = h('form', { id: 'put-provider-key', class: 'inline-form' },
    field('Tenant', h('input', { name: 'tenant', required: true })),
    field('Provider', h('input', { name: 'provider', required: true })),
    field('API key', h('input', { name: 'api_key', type: 'password', required: true })),
    field('Validate now', h('input', { name: 'validate', type: 'checkbox', value: 'yes', checked: true })),
    h('button', { type: 'submit' }, 'Store key'));
  const refresh = async () => {
    const [{ data: tenants }, { data: spend }] = await Promise.all([get('/admin/tenants'), get('/ui/api/budgets')]);
    const sections = [];
    for (const t of tenants) {
      const own = spend.find((s) => s.scope === 'tenant' && s.name === t.name);
      const keys = spend.filter((s) => s.scope === 'key' && s.tenant === t.name);
      sections.push(h('section', { class: 'card tenant', 'data-tenant': t.name },
        h('h3', {}, t.name),
        h('div', { class: 'tenant-budget' }, bar(own)),
        h('p', { class: 'muted small' }, `limits: ${t.limits?.rpm ?? '–'} rpm, ${t.limits?.tpm ?? '–'} tpm; `
          + `alerts at ${(t.alerts?.at || []).map((a) => `${Math.round(a * 100)} %`).join(', ')}`),
        keys.length ? table([
          { title: 'Key', value: (k) => k.name },
          { title: 'Budget', value: (k) => bar(k) },
        ], keys) : null,
        h('h4', {}, 'Provider keys'),
        await providerKeys(t, refresh)));
    }
    clear(body, sections.length ? sections : h('p', { class: 'muted' }, 'No tenants.'));
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = formValues(form);
    try {
      const path = `/admin/tenants/${encodeURIComponent(v.tenant)}/provider-keys/${encodeURIComponent(v.provider)}`;
      await call('PUT', path, { api_key: v.api_key, validate: v.validate === 'yes' });
      form.reset();
      toast(`Stored ${v.provider} key for ${v.tenant}.`);
      await refresh();
    } catch (err) { toast(err.message, 'bad'); }
  });
  main.append(body, h('h3', {}, 'Store a tenant\'s own provider key'), form);
  await refresh();
}
