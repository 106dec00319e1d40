// The dashboard shell: who is logged in, the navigation, and one page module per route (#/<page>).
import { logout, session } from './api.js';
import { clear, h } from './dom.js';
import * as adoption from './pages/adoption.js';
import * as compare from './pages/compare.js';
import * as estimate from './pages/estimate.js';
import * as keys from './pages/keys.js';
import * as me from './pages/me.js';
import * as models from './pages/models.js';
import * as providers from './pages/providers.js';
import * as requests from './pages/requests.js';
import * as savings from './pages/savings.js';
import * as tenants from './pages/tenants.js';
import * as usage from './pages/usage.js';

const OPERATOR = {
  usage, providers, models, keys, tenants, compare, requests, estimate: estimate.operator, savings, adoption,
};
const TENANT = { me, estimate: estimate.tenant };
const TITLES = {
  usage: 'Usage', providers: 'Providers', models: 'Models', keys: 'Keys', tenants: 'Tenants',
  compare: 'Compare', requests: 'Requests', me: 'My key', estimate: 'Estimate', savings: 'Savings',
  adoption: 'Adoption',
};

let pages = null;

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const fallback = Object.keys(pages)[0];
  return { name: pages[name] ? name : fallback, arg: decodeURIComponent(rest.join('/')) };
}

async function render() {
  const { name, arg } = route();
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('active', link.dataset.page === name);
  }
  const main = document.getElementById('main');
  main.dataset.page = name;
  main.dataset.ready = 'false';
  clear(main, h('h2', {}, TITLES[name]));
  try {
    await pages[name].render(main, arg);
  } catch (err) {
    main.append(h('p', { class: 'error' }, String(err.message || err)));
  }
  main.dataset.ready = 'true';
}

async function start() {
  const who = await session();
  if (!who) {
    location.assign('login');
    return;
  }
  pages = who.kind === 'admin' ? OPERATOR : TENANT;
  document.getElementById('who').textContent = who.label;
  document.getElementById('logout').addEventListener('click', () => logout());
  clear(document.getElementById('nav'), Object.keys(pages).map((name) =>
    h('a', { href: `#/${name}`, 'data-page': name }, TITLES[name])));
  window.addEventListener('hashchange', render);
  await render();
}

start();
