// Operator usage: totals, tokens and cost over time, cost by provider and model, model popularity,
// latency and error rate per provider. One server-side aggregate (/ui/api/overview) feeds it all.
import { get, query } from '../api.js';
import { chart, label } from '../charts.js';
import { clear, h, ms, num, pct, table, usd } from '../dom.js';
import { current, selector } from '../range.js';

export function card(id, title, text, value) {
  return h('div', { class: 'stat', id, 'data-value': String(value ?? '') },
    h('span', { class: 'stat-title' }, title), h('span', { class: 'stat-value' }, text));
}

export function totals(t) {
  return h('div', { class: 'stats', id: 'totals' },
    card('total-requests', 'Requests', num(t.requests), t.requests),
    card('total-tokens', 'Tokens', num(t.prompt_tokens + t.completion_tokens),
      t.prompt_tokens + t.completion_tokens),
    card('total-cost', 'Cost', usd(t.cost_micro_usd), t.cost_micro_usd),
    card('total-errors', 'Errors', num(t.errors), t.errors),
    card('total-p50', 'Latency p50', ms(t.latency_p50_ms), t.latency_p50_ms),
    card('total-p95', 'Latency p95', ms(t.latency_p95_ms), t.latency_p95_ms));
}

export function timeCharts(o) {
  const x = o.series.map((p) => new Date(p.at * 1000).toISOString());
  return [
    chart('chart-tokens', 'Tokens over time', [
      { type: 'bar', name: 'prompt', x, y: o.series.map((p) => p.prompt_tokens) },
      { type: 'bar', name: 'completion', x, y: o.series.map((p) => p.completion_tokens) },
    ], { barmode: 'stack' }),
    chart('chart-cost', 'Cost over time (USD)', [
      { type: 'scatter', mode: 'lines+markers', name: 'cost', x, y: o.series.map((p) => p.cost_micro_usd / 1e6) },
    ]),
  ];
}

export function breakdownCharts(o) {
  const top = o.models.slice().sort((a, b) => b.cost_micro_usd - a.cost_micro_usd).slice(0, 15);
  const popular = o.popular_models.slice(0, 15);
  return [
    chart('chart-cost-provider', 'Cost by provider (USD)', [{ type: 'bar',
      x: o.providers.map((p) => label(p.group)), y: o.providers.map((p) => p.cost_micro_usd / 1e6) }]),
    chart('chart-cost-model', 'Cost by model (USD)', [{ type: 'bar',
      x: top.map((m) => label(m.group)), y: top.map((m) => m.cost_micro_usd / 1e6) }]),
    chart('chart-popularity', 'Model popularity (requests)', [{ type: 'bar',
      x: popular.map((m) => label(m.model)), y: popular.map((m) => m.requests) }]),
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
  const names = o.providers.map((p) => label(p.group));
  clear(body,
    h('p', { class: 'muted', id: 'range-info', 'data-since': String(range.since ?? ''),
      'data-until': String(range.until) },
    `${num(o.records_read)} ledger records, aggregated in ${o.elapsed_ms} ms`,
    o.truncated ? ' (truncated: narrow the range)' : ''),
    totals(o.totals),
    h('div', { class: 'grid' },
      ...timeCharts(o),
      ...breakdownCharts(o),
      chart('chart-latency', 'Latency per provider (ms)', [
        { type: 'bar', name: 'p50', x: names, y: o.providers.map((p) => p.latency_p50_ms) },
        { type: 'bar', name: 'p95', x: names, y: o.providers.map((p) => p.latency_p95_ms) },
      ], { barmode: 'group' }),
      chart('chart-errors', 'Error rate per provider (%)', [{ type: 'bar', x: names,
        y: o.providers.map((p) => (p.requests ? (100 * p.errors) / p.requests : 0)) }])),
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
