// The ledger, page by page (GET /admin/usage/records with its cursor: the server pages, the browser holds
// one page). The ledger keeps records in the order they were written: pages run oldest first in the range.
import { get, query } from '../api.js';
import { badge, clear, field, h, ms, num, table, usd, when } from '../dom.js';
import { current, selector } from '../range.js';

const PAGE = 50;
const OUTCOME = { completed: 'good', client_aborted: 'warn', upstream_error: 'bad', rejected: 'bad' };

const COLUMNS = [
  { title: 'Started', value: (r) => when(r.started_at) },
  { title: 'Request id', value: (r) => h('code', {}, r.request_id) },
  { title: 'Key', value: (r) => r.key },
  { title: 'Tenant', value: (r) => r.tenant },
  { title: 'Model', value: (r) => r.model },
  { title: 'Provider', value: (r) => r.provider },
  { title: 'Outcome', value: (r) => h('span', {}, badge(r.outcome, OUTCOME[r.outcome] || ''),
    r.estimated ? badge('estimated', 'warn') : null) },
  { title: 'Status', value: (r) => r.status },
  { title: 'Tokens', value: (r) => num(r.prompt_tokens + r.completion_tokens), class: 'num' },
  { title: 'Cost', value: (r) => usd(r.cost_micro_usd), class: 'num' },
  { title: 'Latency', value: (r) => ms(r.latency_ms), class: 'num' },
];

export async function render(main) {
  const key = h('input', { id: 'requests-key', placeholder: 'key name' });
  const tenant = h('input', { id: 'requests-tenant', placeholder: 'tenant' });
  const out = h('div');
  // cursors[i] opens page i (page 0: no cursor); the range is fixed when a search starts
  let cursors = [undefined];
  let pageNo = 0;
  let range = current();
  const show = async () => {
    const page = await get('/admin/usage/records' + query({ key: key.value, tenant: tenant.value,
      since: range.since, until: range.until, limit: PAGE, cursor: cursors[pageNo] }));
    cursors[pageNo + 1] = page.next_cursor || undefined;
    const first = pageNo * PAGE + 1;
    const prev = h('button', { type: 'button', id: 'requests-prev', disabled: pageNo === 0,
      onclick: () => { pageNo -= 1; show(); } }, '← Previous');
    const next = h('button', { type: 'button', id: 'requests-next', disabled: !page.next_cursor,
      onclick: () => { pageNo += 1; show(); } }, 'Next →');
    const info = page.data.length
      ? `Records ${num(first)}–${num(first + page.data.length - 1)}, oldest first`
      : 'No requests in this range.';
    clear(out, h('div', { class: 'pager', id: 'requests-pager', 'data-page': String(pageNo + 1) },
      prev, next, h('span', { class: 'muted', id: 'requests-info' }, info)),
    table(COLUMNS, page.data, { id: 'requests-table', empty: 'No requests in this range.',
      row: (r) => ({ 'data-request': r.request_id }) }));
  };
  const restart = () => {
    cursors = [undefined];
    pageNo = 0;
    range = current();
    return show();
  };
  const form = h('form', { class: 'toolbar' }, selector(restart), field('Key', key), field('Tenant', tenant),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => { event.preventDefault(); restart(); });
  main.append(form, out);
  await restart();
}
