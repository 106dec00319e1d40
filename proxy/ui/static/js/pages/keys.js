// Virtual keys: create (the secret is shown once, here, with a copy button), limits and budget, last use
// and spend (30 days of the ledger, GET /admin/usage/keys), revoke.
import { call, get } from '../api.js';
import { ago, clear, copyButton, field, formValues, h, num, table, toast, usd, when } from '../dom.js';

function limits(k) {
  const parts = [];
  if (k.limits?.rpm) parts.push(`${k.limits.rpm} rpm`);
  if (k.limits?.tpm) parts.push(`${k.limits.tpm} tpm`);
  return parts.join(', ') || 'none';
}

function budget(k) {
  return k.budget ? `${usd(Math.round(k.budget.usd * 1e6))} ${k.budget.period}` : 'none';
}

function createBody(v) {
  const body = { name: v.name, tenant: v.tenant || 'default' };
  if (v.models) body.models = v.models.split(',').map((s) => s.trim()).filter(Boolean);
  const lim = {};
  if (v.rpm) lim.rpm = Number(v.rpm);
  if (v.tpm) lim.tpm = Number(v.tpm);
  if (Object.keys(lim).length) body.limits = lim;
  if (v.usd) body.budget = { usd: Number(v.usd), period: v.period };
  return body;
}

export async function render(main) {
  const list = h('div');
  const secretBox = h('div', { id: 'new-key' });
  const form = h('form', { id: 'create-key', class: 'inline-form' },
    field('Name', h('input', { name: 'name', required: true })),
    field('Tenant', h('input', { name: 'tenant', placeholder: 'default' })),
    field('Models (globs)', h('input', { name: 'models', placeholder: '*' })),
    field('RPM', h('input', { name: 'rpm', type: 'number', min: '1' })),
    field('TPM', h('input', { name: 'tpm', type: 'number', min: '1' })),
    field('Budget USD', h('input', { name: 'usd', type: 'number', min: '0', step: 'any' })),
    field('Period', h('select', { name: 'period' }, ['monthly', 'weekly', 'daily', 'total'].map((p) =>
      h('option', { value: p }, p)))),
    h('button', { type: 'submit' }, 'Create key'));
  const refresh = async () => {
    const [{ data }, activity] = await Promise.all([get('/admin/keys?limit=1000'), get('/admin/usage/keys')]);
    const used = new Map(activity.data.map((a) => [`${a.tenant}\u0000${a.key}`, a]));
    const of = (k) => used.get(`${k.tenant}\u0000${k.name}`);
    clear(list, table([
      { title: 'Name', value: (k) => k.name, class: 'name' },
      { title: 'Tenant', value: (k) => k.tenant },
      { title: 'Models', value: (k) => (k.models || []).join(', ') },
      { title: 'Limits', value: limits },
      { title: 'Budget', value: budget },
      { title: 'Last used', value: (k) => (of(k) ? h('span', { title: when(of(k).last_used_at) }, ago(of(k).last_used_at))
        : h('span', { class: 'muted' }, 'never')), class: 'last-used' },
      { title: 'Requests (30 d)', value: (k) => num(of(k)?.requests ?? 0), class: 'num' },
      { title: 'Spend (30 d)', value: (k) => usd(of(k)?.cost_micro_usd ?? 0), class: 'num spend' },
      { title: 'Source', value: (k) => k.source },
      { title: '', value: (k) => (k.source === 'api' ? revoke(k, refresh) : h('span', { class: 'muted small' }, 'YAML')) },
    ], data, { id: 'keys-table', empty: 'No keys.', row: (k) => ({ 'data-key': k.name, 'data-tenant': k.tenant }) }));
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const created = await call('POST', '/admin/keys', createBody(formValues(form)));
      // The only time the secret exists outside the caller's hands: shown once, never stored by the page.
      clear(secretBox, h('div', { class: 'secret card' },
        h('p', {}, `Key "${created.name}" created. Copy it now: it will not be shown again.`),
        h('div', {}, h('code', { id: 'new-key-secret' }, created.key), copyButton(created.key, 'copy-key'))));
      form.reset();
      await refresh();
    } catch (err) { toast(err.message, 'bad'); }
  });
  main.append(list, h('h3', {}, 'Create a key'), form, secretBox);
  await refresh();
}

// Two clicks instead of confirm(): no blocking dialog, and nothing is revoked by a stray click.
function revoke(k, refresh) {
  const button = h('button', { type: 'button', class: 'danger revoke', 'data-key': k.name }, 'Revoke');
  button.addEventListener('click', async () => {
    if (button.dataset.armed !== 'true') {
      button.dataset.armed = 'true';
      button.textContent = 'Confirm revoke';
      return;
    }
    try {
      await call('DELETE', `/admin/keys/${encodeURIComponent(k.id)}`);
      toast(`Revoked ${k.name}.`);
      await refresh();
    } catch (err) { toast(err.message, 'bad'); }
  });
  return button;
}
