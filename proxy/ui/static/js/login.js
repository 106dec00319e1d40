import { url } from './api.js';

const form = document.getElementById('login-form');
const error = document.getElementById('login-error');
const notice = document.getElementById('login-notice');

// Without an admin token only virtual keys can log in: say so before anyone tries one.
fetch(url('/ui/api/session'), { credentials: 'same-origin' })
  .then((response) => response.json())
  .then((data) => { if (data.admin_login === false) notice.textContent = data.notice; })
  .catch(() => {});

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  error.textContent = '';
  const token = document.getElementById('token').value;
  const response = await fetch(url('/ui/login'), {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Efflux-UI': '1' },
    body: JSON.stringify({ token }),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const reason = data.error && (data.error.message || data.error); // an envelope, or the login's own text
    error.textContent = reason || `Log in failed (HTTP ${response.status}).`;
    return;
  }
  document.getElementById('token').value = '';
  location.assign(url('/ui/') + (data.kind === 'tenant' ? '#/me' : '#/usage'));
});
