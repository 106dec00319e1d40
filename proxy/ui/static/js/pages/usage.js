// Operator usage: totals, tokens and cost over time, cost by provider and model, model popularity,
// latency and error rate per provider. One server-side aggregate (/ui/api/overview) feeds it all.
import { get, query } from '../api.js';
import { barChart, timeChart } from '../charts.js';
import { clear, h, ms, num, pct, table, usd } from '../dom.js';
import { current, selector } from '../range.js';

export function card(id, title, text, value) {
  return h('div', { class: 'stat', id, 'data-value': String(value ?? '') },
    h('span', { class: 'stat-title' }, title), h('span', { class: 'stat-value' }, text));
}

// rejected: refusals before admission (bad key, model not allowed or unknown, rate limit), not in the ledger
export function totals(t, rejected = { total: 0 }) {
  const errors = t.errors + (rejected.total || 0);
  return h('div', { class: 'stats', id: 'totals' },
    card('total-requests', 'Requests', num(t.requests), t.requests),
    card('total-tokens', 'Tokens', num(t.prompt_tokens + t.completion_tokens),
      t.prompt_tokens + t.completion_tokens),
    card('total-cost', 'Cost', usd(t.cost_micro_usd), t.cost_micro_usd),
    h('div', { class: 'stat', id: 'total-errors', 'data-value': String(errors),
      'data-ledger': String(t.errors), 'data-rejected': String(rejected.total || 0) },
    h('span', { class: 'stat-title' }, 'Errors'), h('span', { class: 'stat-value' }, num(errors)),
    rejected.total ? h('span', { class: 'stat-note' }, `${num(rejected.total)} refused by the gateway`) : null),
    card('total-p50', 'Latency p50', ms(t.latency_p50_ms), t.latency_p50_ms),
    card('total-p95', 'Latency p95', ms(t.latency_p95_ms), t.latency_p95_ms));
}

export function timeCharts(o) {
  const at = o.series.map((p) => p.at);
  const errorRate = o.series.map((p) => {
    const tried = p.requests + (p.rejected || 0);
    return tried ? ((p.errors || 0) + (p.rejected || 0)) / tried : 0;
  });
  return [
    timeChart('chart-tokens', 'Tokens over time', { at, step: o.step, stacked: true, series: [
      { name: 'prompt', values: o.series.map((p) => p.prompt_tokens) },
      { name: 'completion', values: o.series.map((p) => p.completion_tokens) },
    ] }),
    timeChart('chart-cost', 'Cost over time', { at, step: o.step, format: 'usd', series: [
      { name: 'cost', values: o.series.map((p) => p.cost_micro_usd) },
    ] }),
    timeChart('chart-errors', 'Error rate over time (incl. gateway refusals)', { at, step: o.step,
      format: 'pct', series: [{ name: 'error rate', values: errorRate }] }),
  ];
}

export function breakdownCharts(o) {
  const top = o.models.slice().sort((a, b) => b.cost_micro_usd - a.cost_micro_usd).slice(0, 15);
  const popular = o.popular_models.slice(0, 15);
  return [
    barChart('chart-cost-provider', 'Cost by provider', { format: 'usd',
      labels: o.providers.map((p) => p.group), series: [{ name: 'cost', values: o.providers.map((p) => p.cost_micro_usd) }] }),
    barChart('chart-cost-model', 'Cost by model', { format: 'usd',
      labels: top.map((m) => m.group), series: [{ name: 'cost', values: top.map((m) => m.cost_micro_usd) }] }),
    barChart('chart-popularity', 'Model popularity (requests)', {
      labels: popular.map((m) => m.model), series: [{ name: 'requests', values: popular.map((m) => m.requests) }] }),
  ];
}

export async function render(main) {
  const body = h('div');
  main.append(h('div', { class: 'toolbar' }, selector(() => draw(body))), body);
  await draw(body);
}

async function draw(body) {
  const range = current();
  const o = await get('/ui/api/overview' + query({ since: range.since, until: range.until }));
  const names = o.providers.map((p) => p.group);
  const rejected = o.rejected || { total: 0, by_status: {} };
  clear(body,
    h('p', { class: 'muted', id: 'range-info', 'data-since': String(range.since ?? ''),
      'data-until': String(range.until), 'data-step': String(o.step) },
    `${num(o.records_read)} ledger records, aggregated in ${o.elapsed_ms} ms`,
    o.truncated ? ' (truncated: narrow the range)' : ''),
    totals(o.totals, rejected),
    h('div', { class: 'grid' },
      ...timeCharts(o),
      ...breakdownCharts(o),
      barChart('chart-latency', 'Latency per provider', { labels: names, format: 'ms', series: [
        { name: 'p50', values: o.providers.map((p) => p.latency_p50_ms) },
        { name: 'p95', values: o.providers.map((p) => p.latency_p95_ms) },
      ] })),
    rejected.total ? h('p', { class: 'muted small', id: 'rejections' }, 'Refused by the gateway before admission: ',
      Object.entries(rejected.by_status).map(([status, n]) => `${num(n)} × ${status}`).join(', '),
      ' (this replica; not in the ledger).') : null,
    h('h3', {}, 'Per provider'),
    table([
      { title: 'Provider', value: (p) => p.group },
      { title: 'Requests', value: (p) => num(p.requests), class: 'num' },
      { title: 'Errors', value: (p) => num(p.errors), class: 'num' },
      { title: 'Error rate', value: (p) => pct(p.requests ? p.errors / p.requests : null), class: 'num' },
      { title: 'p50', value: (p) => ms(p.latency_p50_ms), class: 'num' },
      { title: 'p95', value: (p) => ms(p.latency_p95_ms), class: 'num' },
      { title: 'Tokens', value: (p) => num(p.prompt_tokens + p.completion_tokens), class: 'num' },
      { title: 'Cost', value: (p) => usd(p.cost_micro_usd), class: 'num' },
    ], o.providers, { id: 'usage-providers', empty: 'No traffic in this range.' }),
    h('h3', {}, 'Per model'),
    table([
      { title: 'Model', value: (m) => m.group },
      { title: 'Requests', value: (m) => num(m.requests), class: 'num' },
      { title: 'Tokens', value: (m) => num(m.prompt_tokens + m.completion_tokens), class: 'num' },
      { title: 'Cost', value: (m) => usd(m.cost_micro_usd), class: 'num' },
    ], o.models, { id: 'usage-models', empty: 'No traffic in this range.' }));
}
