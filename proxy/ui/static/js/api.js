// Calls to the gateway from a logged-in page: the HttpOnly session cookie goes along by itself; the CSRF
// token (read once from /ui/api/session, kept in memory only) goes in a header on every call.

const ROOT = location.pathname.replace(/\/ui\/.*$/, ''); // the gateway may be mounted under a prefix
let csrf = null;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function url(path) {
  return ROOT + path;
}

export async function session() {
  const response = await fetch(url('/ui/api/session'), { credentials: 'same-origin' });
  const data = await response.json();
  if (!data.kind) return null;
  csrf = data.csrf;
  return data;
}

export async function call(method, path, body) {
  const headers = { 'X-CSRF-Token': csrf || '' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url(path), {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (response.status === 401 && path.startsWith('/ui/')) {
    location.assign(url('/ui/login'));
  }
  if (!response.ok) {
    const message = data && data.error ? (data.error.message || data.error) : `HTTP ${response.status}`;
    throw new ApiError(response.status, `${method} ${path}: ${message}`);
  }
  return data;
}

export const get = (path) => call('GET', path);

export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '');
  return pairs.length ? '?' + new URLSearchParams(pairs).toString() : '';
}

export async function logout() {
  await call('POST', '/ui/logout');
  location.assign(url('/ui/login'));
}
