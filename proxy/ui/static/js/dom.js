// DOM building with text nodes only: every value from the API goes through textContent (never innerHTML),
// so a provider, model or tenant name containing markup is shown as the characters it is.
import { usd } from './format.js';

export { ago, ms, num, pct, price, usd, when } from './format.js';

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = String(value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name in node && typeof value !== 'string') node[name] = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

// columns: [{title, value: row => text | Node, class?}]
// row: optional row => attributes of its <tr> (e.g. a data-* name for tests and styles)
export function table(columns, rows, { empty = 'Nothing yet.', id, row: attrs } = {}) {
  if (!rows.length) return h('p', { class: 'muted empty', id }, empty);
  // in a box that scrolls sideways on a narrow screen, so the page itself never does
  return h('div', { class: 'table-wrap' }, h('table', { id },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.class }, c.title)))),
    h('tbody', {}, rows.map((row) => h('tr', attrs ? attrs(row) : {},
      columns.map((c) => h('td', { class: c.class, 'data-label': c.title }, c.value(row))))))));
}

export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}` }, text);
}

// A budget bar: filled to spent/budget, with a tick at each alert threshold.
export function progress(spent, budget, thresholds = []) {
  const share = budget ? Math.min(1, spent / budget) : 0;
  const level = thresholds.filter((t) => share >= t).length;
  const bar = h('div', { class: `bar level-${Math.min(level, 3)}`, role: 'progressbar',
    'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(Math.round(share * 100)) });
  const fill = h('div', { class: 'fill' });
  fill.style.width = `${(share * 100).toFixed(1)}%`; // CSSOM, allowed by the CSP (style attributes are not)
  bar.append(fill);
  for (const t of thresholds) {
    const tick = h('div', { class: 'tick', title: `alert at ${Math.round(t * 100)} %` });
    tick.style.left = `${Math.min(100, t * 100)}%`;
    bar.append(tick);
  }
  return h('div', { class: 'budget' }, bar,
    h('span', { class: 'budget-text' }, `${usd(spent)} of ${usd(budget)} (${(share * 100).toFixed(1)} %)`));
}

export function toast(message, kind = 'ok') {
  const node = document.getElementById('toast');
  clear(node, h('div', { class: `toast ${kind}` }, message));
  setTimeout(() => node.replaceChildren(), 4000);
}

export function field(label, input) {
  return h('label', { class: 'field' }, h('span', {}, label), input);
}

export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

// A button that copies a text to the clipboard (the Clipboard API; a selection and execCommand where the
// page is not a secure context, e.g. plain http on a LAN address).
export function copyButton(text, id) {
  const button = h('button', { type: 'button', class: 'copy', id }, 'Copy');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = h('textarea', { class: 'offscreen', readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    button.textContent = 'Copied';
    button.dataset.copied = 'true';
  });
  return button;
}
