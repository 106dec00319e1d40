// The tenant view (a virtual key's session): its limits and budgets, its own usage, and its tenant's own
// provider keys. Everything comes from /me and /ui/api/overview, which the server scopes to this key.
import { call, get, query } from '../api.js';
import { badge, clear, field, formValues, h, progress, table, toast, usd, when } from '../dom.js';
import { current, selector } from '../range.js';
import { breakdownCharts, timeCharts, totals } from './usage.js';

function budgetRow(title, b) {
  return h('div', { class: 'budget-row' }, h('span', { class: 'budget-title' }, title),
    b ? progress(b.spent_micro_usd + (b.reserved_micro_usd || 0), b.budget_micro_usd, [0.5, 0.8, 1])
      : h('span', { class: 'muted' }, 'no budget'),
    b ? h('span', { class: 'small muted remaining', 'data-value': String(b.remaining_micro_usd) },
      ` ${b.period}: ${usd(b.remaining_micro_usd)} remaining`) : null);
}

async function providerKeys(box) {
  const { data } = await get('/me/provider-keys');
  const del = (p) => async () => {
    try { await call('DELETE', `/me/provider-keys/${encodeURIComponent(p)}`); await providerKeys(box); } catch (err) { toast(err.message, 'bad'); }
  };
  clear(box, table([
    { title: 'Provider', value: (k) => k.provider },
    { title: 'Stored', value: (k) => when(k.updated_at) },
    { title: 'Valid', value: (k) => (k.validated === null || k.validated === undefined ? badge('unknown')
      : k.validated ? badge('valid', 'good') : badge('invalid', 'bad')) },
    { title: '', value: (k) => h('button', { type: 'button', class: 'danger', onclick: del(k.provider) }, 'Delete') },
  ], data, { id: 'my-provider-keys', empty: 'Your requests use the gateway\'s shared provider keys.' }));
}

export async function render(main) {
  const me = await get('/me');
  const usageBox = h('div');
  const keysBox = h('div');
  const form = h('form', { id: 'my-key-form', class: 'inline-form' },
    field('Provider', h('input', { name: 'provider', required: true })),
    field('API key', h('input', { name: 'api_key', type: 'password', required: true })),
    field('Validate', h('input', { name: 'validate', type: 'checkbox', value: 'yes', checked: true })),
    h('button', { type: 'submit' }, 'Store key'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = formValues(form);
    try {
      const info = await call('PUT', `/me/provider-keys/${encodeURIComponent(v.provider)}`,
        { api_key: v.api_key, validate: v.validate === 'yes' });
      form.reset();
      toast(`Stored your ${v.provider} key${info.validated === false ? ' (the provider refused it)' : ''}.`,
        info.validated === false ? 'bad' : 'ok');
      await providerKeys(keysBox);
    } catch (err) { toast(err.message, 'bad'); }
  });
  const draw = async () => {
    const range = current();
    const o = await get('/ui/api/overview' + query({ since: range.since, until: range.until }));
    clear(usageBox, totals(o.totals, o.rejected), h('div', { class: 'grid' }, ...timeCharts(o), ...breakdownCharts(o)));
  };
  main.append(
    h('section', { class: 'card', id: 'my-key' },
      h('h3', {}, `Key ${me.key.name}`, ' ', h('span', { class: 'muted' }, `tenant ${me.tenant.name}`)),
      h('p', {}, `Models: ${me.key.models.join(', ')}; limits: ${me.key.limits.rpm ?? '–'} rpm, ${me.key.limits.tpm ?? '–'} tpm`),
      budgetRow('Key budget', me.key.budget),
      budgetRow('Tenant budget', me.tenant.budget)),
    h('h3', {}, 'My usage'), h('div', { class: 'toolbar' }, selector(draw)), usageBox,
    h('h3', {}, 'My tenant\'s provider keys'), keysBox, form);
  await Promise.all([draw(), providerKeys(keysBox)]);
}
