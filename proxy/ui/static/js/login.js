import { url } from './api.js';

const form = document.getElementById('login-form');
const error = document.getElementById('login-error');

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
