// Cost estimation: what a chat request would cost before it is sent (POST /admin/estimate for the
// operator, POST /me/estimate for a virtual key: only the models that key may use).
import { call } from '../api.js';
import { clear, field, formValues, h, num, table, toast, usd } from '../dom.js';

function body(v) {
  const request = { model: v.model.trim(), messages: [] };
  if (v.system) request.messages.push({ role: 'system', content: v.system });
  request.messages.push({ role: 'user', content: v.prompt || '' });
  if (v.max_tokens) request.max_tokens = Number(v.max_tokens);
  return request;
}

function result(e) {
  return h('div', { id: 'estimate-result' },
    h('div', { class: 'stats' },
      h('div', { class: 'stat', id: 'estimate-expected', 'data-value': String(e.expected_micro_usd) },
        h('span', { class: 'stat-title' }, 'Expected cost'), h('span', { class: 'stat-value' }, usd(e.expected_micro_usd))),
      h('div', { class: 'stat', id: 'estimate-worst', 'data-value': String(e.worst_case_micro_usd) },
        h('span', { class: 'stat-title' }, 'Worst case (reserved)'), h('span', { class: 'stat-value' }, usd(e.worst_case_micro_usd))),
      h('div', { class: 'stat' }, h('span', { class: 'stat-title' }, 'Prompt tokens'),
        h('span', { class: 'stat-value' }, num(e.prompt_tokens))),
      h('div', { class: 'stat' }, h('span', { class: 'stat-title' }, 'Output tokens (expected / max)'),
        h('span', { class: 'stat-value' }, `${num(e.expected_output_tokens)} / ${num(e.max_output_tokens)}`))),
    h('p', { class: 'muted small' }, e.expected_basis === 'ledger'
      ? 'Expected output: the mean answer length of this model in the last 7 days.'
      : 'Expected output: a default length (no answers of this model in the last 7 days).'),
    table([
      { title: 'Provider', value: (t) => t.provider },
      { title: 'Upstream model', value: (t) => t.upstream_model },
      { title: 'Expected', value: (t) => usd(t.expected_micro_usd), class: 'num' },
      { title: 'Worst case', value: (t) => usd(t.worst_case_micro_usd), class: 'num' },
    ], e.targets, { id: 'estimate-targets' }));
}

function page(path) {
  return async (main) => {
    const out = h('div');
    const form = h('form', { id: 'estimate-form', class: 'inline-form' },
      field('Model', h('input', { name: 'model', required: true, placeholder: 'gpt-4o-mini' })),
      field('Max output tokens', h('input', { name: 'max_tokens', type: 'number', min: '1' })),
      field('System prompt', h('input', { name: 'system', class: 'wide' })),
      field('Prompt', h('textarea', { name: 'prompt', required: true, placeholder: 'The user message…' })),
      h('button', { type: 'submit' }, 'Estimate'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        clear(out, result(await call('POST', path, body(formValues(form)))));
      } catch (err) {
        clear(out, h('p', { class: 'error', id: 'estimate-error' }, err.message));
        toast(err.message, 'bad');
      }
    });
    main.append(h('p', { class: 'muted' }, 'Prices a chat request at each target of its route: the worst case '
      + 'is what admission reserves (all of max output), the expected cost assumes a typical answer.'), form, out);
  };
}

export const operator = { render: page('/admin/estimate') };
export const tenant = { render: page('/me/estimate') };
