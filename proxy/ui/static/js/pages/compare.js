// One model across providers: price, observed latency and error rate (GET /admin/compare?model=).
import { get, query } from '../api.js';
import { barChart } from '../charts.js';
import { badge, clear, field, h, ms, num, pct, price as money, table } from '../dom.js';

export async function render(main, model) {
  const input = h('input', { id: 'compare-model', placeholder: 'model name, e.g. gpt-4o', value: model || '' });
  const out = h('div');
  const form = h('form', { id: 'compare-form', class: 'toolbar' }, field('Model', input),
    h('button', { type: 'submit' }, 'Compare'));
  const show = async () => {
    if (!input.value) return;
    const c = await get('/admin/compare' + query({ model: input.value }));
    const price = (p, k) => (p.price ? money(p.price[k]) : '–');
    clear(out, table([
      { title: 'Provider', value: (p) => h('span', {}, p.provider, p.routed ? badge('routed', 'good') : null) },
      { title: 'Upstream model', value: (p) => p.upstream_model ?? '–' },
      { title: 'Input / 1M', value: (p) => price(p, 'input'), class: 'num' },
      { title: 'Output / 1M', value: (p) => price(p, 'output'), class: 'num' },
      { title: 'Requests', value: (p) => num(p.requests), class: 'num' },
      { title: 'Error rate', value: (p) => pct(p.error_rate), class: 'num' },
      { title: 'p50', value: (p) => ms(p.latency_p50_ms), class: 'num' },
      { title: 'p95', value: (p) => ms(p.latency_p95_ms), class: 'num' },
    ], c.data, { id: 'compare-table', empty: 'No provider serves this model.' }),
    barChart('chart-compare', 'Latency by provider', { labels: c.data.map((p) => p.provider), format: 'ms',
      series: [
        { name: 'p50', values: c.data.map((p) => p.latency_p50_ms) },
        { name: 'p95', values: c.data.map((p) => p.latency_p95_ms) },
      ] }));
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/compare/${encodeURIComponent(input.value)}`;
  });
  main.append(form, out);
  await show();
}
