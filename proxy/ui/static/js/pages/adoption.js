// Provider adoption: tenants, keys and requests per provider, and how much traffic went through
// aggregators against direct providers (GET /admin/adoption), over the chosen range.
import { get, query } from '../api.js';
import { barChart } from '../charts.js';
import { badge, clear, h, num, pct, table, usd } from '../dom.js';
import { current, selector } from '../range.js';

export async function render(main) {
  const body = h('div');
  const draw = async () => {
    const range = current();
    const r = await get('/admin/adoption' + query({ since: range.since, until: range.until }));
    const type = (t) => r.types.find((x) => x.type === t) || { requests: 0, share: 0, tenants: 0, providers: 0 };
    const agg = type('aggregator');
    const direct = type('direct');
    clear(body,
      h('div', { class: 'stats', id: 'adoption-totals' },
        h('div', { class: 'stat', id: 'adoption-tenants', 'data-value': String(r.tenants) },
          h('span', { class: 'stat-title' }, 'Tenants with traffic'), h('span', { class: 'stat-value' }, num(r.tenants))),
        h('div', { class: 'stat', id: 'adoption-aggregator', 'data-value': String(agg.requests) },
          h('span', { class: 'stat-title' }, 'Via aggregators'),
          h('span', { class: 'stat-value' }, `${pct(agg.share)}`), h('span', { class: 'stat-note' }, `${num(agg.requests)} requests, ${num(agg.tenants)} tenants`)),
        h('div', { class: 'stat', id: 'adoption-direct', 'data-value': String(direct.requests) },
          h('span', { class: 'stat-title' }, 'Direct'),
          h('span', { class: 'stat-value' }, `${pct(direct.share)}`), h('span', { class: 'stat-note' }, `${num(direct.requests)} requests, ${num(direct.tenants)} tenants`))),
      h('div', { class: 'grid' },
        barChart('chart-adoption-tenants', 'Tenants per provider', { labels: r.data.map((p) => p.provider),
          series: [{ name: 'tenants', values: r.data.map((p) => p.tenants) }] }),
        barChart('chart-adoption-requests', 'Requests per provider', { labels: r.data.map((p) => p.provider),
          series: [{ name: 'requests', values: r.data.map((p) => p.requests) }] })),
      table([
        { title: 'Provider', value: (p) => p.provider },
        { title: 'Type', value: (p) => badge(p.type, p.type) },
        { title: 'Tenants', value: (p) => num(p.tenants), class: 'num tenants' },
        { title: 'Keys', value: (p) => num(p.keys), class: 'num' },
        { title: 'Requests', value: (p) => num(p.requests), class: 'num requests' },
        { title: 'Share', value: (p) => pct(p.share), class: 'num' },
        { title: 'Cost', value: (p) => usd(p.cost_micro_usd), class: 'num' },
      ], r.data, { id: 'adoption-table', empty: 'No providers.', row: (p) => ({ 'data-provider': p.provider }) }));
  };
  main.append(h('div', { class: 'toolbar' }, selector(draw)), body);
  await draw();
}
