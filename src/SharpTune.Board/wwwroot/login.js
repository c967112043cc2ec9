'use strict';
// The token is traded for a session cookie once; the board then serves the page.
document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const csrf = (document.cookie.match(/(?:^|; )sharptune_csrf=([^;]*)/) || [])[1] || '';
  const reply = await fetch('/api/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
    body: JSON.stringify({ token: document.getElementById('token').value }),
  });
  if (reply.ok) { location.href = '/'; return; }
  const error = document.getElementById('login-error');
  error.textContent = (await reply.json()).error;
  error.hidden = false;
});
