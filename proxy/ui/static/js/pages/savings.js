// Savings: what the traffic cost through each provider against the cheapest direct price for the same
// model (GET /admin/savings), over the chosen range.
import { get, query } from '../api.js';
import { barChart } from '../charts.js';
import { badge, clear, h, num, table, usd } from '../dom.js';
import { current, selector } from '../range.js';

function saved(micro) {
  if (micro === null || micro === undefined) return h('span', { class: 'muted' }, 'no direct price');
  if (micro === 0) return h('span', { class: 'muted' }, 'no difference');
  return h('span', { class: micro > 0 ? 'good' : 'error' }, micro > 0 ? `${usd(micro)} saved` : `${usd(-micro)} more`);
}

export async function render(main) {
  const body = h('div');
  const draw = async () => {
    const range = current();
    const r = await get('/admin/savings' + query({ since: range.since, until: range.until }));
    const t = r.totals;
    clear(body,
      h('div', { class: 'stats', id: 'savings-totals' },
        h('div', { class: 'stat', id: 'savings-cost', 'data-value': String(t.cost_micro_usd) },
          h('span', { class: 'stat-title' }, 'Cost (compared traffic)'), h('span', { class: 'stat-value' }, usd(t.cost_micro_usd))),
        h('div', { class: 'stat', id: 'savings-direct', 'data-value': String(t.direct_cost_micro_usd) },
          h('span', { class: 'stat-title' }, 'At the cheapest direct price'), h('span', { class: 'stat-value' }, usd(t.direct_cost_micro_usd))),
        h('div', { class: 'stat', id: 'savings-saved', 'data-value': String(t.saved_micro_usd) },
          h('span', { class: 'stat-title' }, 'Saved'), h('span', { class: 'stat-value' }, saved(t.saved_micro_usd))),
        h('div', { class: 'stat' }, h('span', { class: 'stat-title' }, 'Requests compared'),
          h('span', { class: 'stat-value' }, `${num(t.matched_requests)} / ${num(t.requests)}`))),
      h('div', { class: 'grid' }, barChart('chart-savings', 'Cost against direct price, by provider', {
        format: 'usd', labels: r.data.map((p) => p.provider), series: [
          { name: 'cost', values: r.data.map((p) => p.cost_micro_usd) },
          { name: 'cheapest direct', values: r.data.map((p) => p.direct_cost_micro_usd) },
        ] })),
      h('h3', {}, 'By provider'),
      table([
        { title: 'Provider', value: (p) => h('span', {}, p.provider, badge(p.type, p.type)) },
        { title: 'Requests', value: (p) => num(p.requests), class: 'num' },
        { title: 'Compared', value: (p) => num(p.matched_requests), class: 'num' },
        { title: 'Cost', value: (p) => usd(p.cost_micro_usd), class: 'num' },
        { title: 'Cheapest direct', value: (p) => usd(p.direct_cost_micro_usd), class: 'num' },
        { title: 'Difference', value: (p) => saved(p.saved_micro_usd), class: 'num' },
        { title: 'Not compared (cost)', value: (p) => usd(p.unmatched_cost_micro_usd), class: 'num' },
      ], r.data, { id: 'savings-providers', empty: 'No traffic in this range.', row: (p) => ({ 'data-provider': p.provider }) }),
      h('h3', {}, 'By model'),
      table([
        { title: 'Provider', value: (m) => m.provider },
        { title: 'Model', value: (m) => m.model },
        { title: 'Requests', value: (m) => num(m.requests), class: 'num' },
        { title: 'Cost', value: (m) => usd(m.cost_micro_usd), class: 'num' },
        { title: 'Cheapest direct', value: (m) => (m.direct_provider ? `${usd(m.direct_cost_micro_usd)} (${m.direct_provider})` : '–'), class: 'num' },
        { title: 'Difference', value: (m) => saved(m.saved_micro_usd), class: 'num' },
      ], r.models, { id: 'savings-models', empty: 'No traffic in this range.' }),
      h('p', { class: 'muted small' }, 'The same tokens priced at every direct provider that prices the model '
        + '(its name without an aggregator\'s vendor prefix); traffic no direct provider prices is not compared.'));
  };
  main.append(h('div', { class: 'toolbar' }, selector(draw)), body);
  await draw();
}
