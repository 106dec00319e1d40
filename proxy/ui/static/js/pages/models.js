// Models: what /v1/models lists (each name once, with every provider serving it), then the explorer of
// the synced catalogues (search by name, provider, feature and provider type).
import { get, query } from '../api.js';
import { badge, clear, field, h, num, price as money, table, when } from '../dom.js';

const price = (m, k) => money(m.pricing ? m.pricing[k] : null);

function served(models) {
  return h('section', { id: 'served' },
    h('p', { id: 'served-count', 'data-value': String(models.length) },
      `${models.length} model${models.length === 1 ? '' : 's'} served (what /v1/models lists)`),
    table([
      { title: 'Model', value: (m) => h('span', {}, m.id, m.status === 'retiring'
        ? badge(`retiring ${when(m.retires_at)}`, 'warn') : null), class: 'name' },
      { title: 'Providers (in routing order)', value: (m) => h('span', {}, (m.providers || []).map((o) =>
        badge(`${o.provider}${o.upstream_model && o.upstream_model !== m.id ? ` → ${o.upstream_model}` : ''}`, o.provider_type))) },
      { title: 'Input / 1M', value: (m) => price(m, 'input'), class: 'num' },
      { title: 'Output / 1M', value: (m) => price(m, 'output'), class: 'num' },
      { title: 'Context', value: (m) => num(m.context_length), class: 'num' },
    ], models, { id: 'served-table', empty: 'No model is served: add a route or sync a provider.',
      row: (m) => ({ 'data-model': m.id }) }));
}

export async function render(main) {
  const [{ data: providers }, { data: models }] = await Promise.all([get('/admin/providers'), get('/admin/models/served')]);
  main.append(served(models), h('h3', {}, 'Catalogues'));
  const q = h('input', { id: 'model-search', type: 'search', placeholder: 'model name…' });
  const provider = h('select', { id: 'model-provider' }, h('option', { value: '' }, 'all providers'),
    providers.map((p) => h('option', { value: p.name }, p.name)));
  const feature = h('input', { id: 'model-feature', placeholder: 'tools, thinking…' });
  const type = h('select', { id: 'model-type' }, ['', 'aggregator', 'direct'].map((t) =>
    h('option', { value: t }, t || 'all types')));
  const list = h('div');
  let timer = null;
  const refresh = async () => {
    const answer = await get('/admin/models' + query({ q: q.value, provider: provider.value,
      feature: feature.value, limit: 200 }));
    const rows = answer.data.filter((m) => !type.value || m.provider_type === type.value);
    clear(list,
      h('p', { class: 'muted', id: 'catalogue-count' }, `${rows.length} catalogue entr${rows.length === 1 ? 'y' : 'ies'}${answer.next_cursor ? ' (first 200: refine the search)' : ''}`),
      table([
        { title: 'Model', value: (m) => h('span', {}, m.model, m.status === 'retiring'
          ? badge(`retiring ${when(m.retires_at)}`, 'warn') : null), class: 'name' },
        { title: 'Provider', value: (m) => m.provider },
        { title: 'Type', value: (m) => badge(m.provider_type, m.provider_type) },
        { title: 'Input / 1M', value: (m) => price(m, 'input'), class: 'num' },
        { title: 'Output / 1M', value: (m) => price(m, 'output'), class: 'num' },
        { title: 'Cached / 1M', value: (m) => price(m, 'cached_input'), class: 'num' },
        { title: 'Context', value: (m) => num(m.context_length), class: 'num' },
        { title: 'Features', value: (m) => (m.features || []).join(', ') },
      ], rows, { id: 'models-table', empty: 'No model matches. Sync a provider to fill its catalogue.' }));
  };
  const soon = () => { clearTimeout(timer); timer = setTimeout(refresh, 200); };
  q.addEventListener('input', soon);
  feature.addEventListener('input', soon);
  provider.addEventListener('change', refresh);
  type.addEventListener('change', refresh);
  main.append(h('div', { class: 'toolbar' }, field('Search', q), field('Provider', provider),
    field('Feature', feature), field('Type', type)), list);
  await refresh();
}
