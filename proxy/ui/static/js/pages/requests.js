// Recent requests from the ledger (GET /admin/usage/records) with their outcome.
import { get, query } from '../api.js';
import { badge, clear, field, h, ms, num, table, usd, when } from '../dom.js';

const SHOWN = 100;
const OUTCOME = { completed: 'good', client_aborted: 'warn', upstream_error: 'bad', rejected: 'bad' };

// The ledger pages oldest first: read the last hour (a bounded number of pages) and show the newest.
async function recent(filters) {
  let rows = [];
  let cursor;
  const since = Math.floor(Date.now() / 1000) - 3600;
  for (let i = 0; i < 20; i += 1) {
    const page = await get('/admin/usage/records' + query({ ...filters, since, limit: 1000, cursor }));
    rows = rows.concat(page.data).slice(-SHOWN);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return rows.reverse();
}

export async function render(main) {
  const key = h('input', { id: 'requests-key', placeholder: 'key name' });
  const tenant = h('input', { id: 'requests-tenant', placeholder: 'tenant' });
  const out = h('div');
  const refresh = async () => {
    const rows = await recent({ key: key.value, tenant: tenant.value });
    clear(out, table([
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
    ], rows, { id: 'requests-table', empty: 'No requests in the last hour.' }));
  };
  const form = h('form', { class: 'toolbar' }, field('Key', key), field('Tenant', tenant),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => { event.preventDefault(); refresh(); });
  main.append(form, out);
  await refresh();
}
