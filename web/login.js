// Log in: the API sets an HttpOnly session cookie that the map's requests (tiles too) carry.
document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("login-error");
  error.hidden = true;
  const resp = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({
      username: document.getElementById("login-user").value,
      password: document.getElementById("login-password").value,
    }),
  });
  if (resp.ok) {
    window.location.assign("/");
    return;
  }
  const body = await resp.json().catch(() => ({message: resp.statusText}));
  error.textContent = body.message || "login failed";
  error.hidden = false;
});
