// First-run admin creation and login; both set the session cookie.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner, Field, Notice, useAction } from "../components.jsx";

export function LoginView({ onboarding, expired, onDone }) {
  const [username, setUsername] = useState(onboarding ? "admin" : "");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const { busy, error, setError, run } = useAction();

  const submit = (e) => {
    e.preventDefault();
    if (onboarding && password !== confirm) {
      setError({ code: "VALIDATION", message: "The two passwords differ.", hint: "Type the same password twice." });
      return;
    }
    run(async () => {
      const path = onboarding ? "auth/onboard" : "auth/login";
      const res = await api.post(path, { username, password }, { quiet401: true });
      onDone(res.user);
    });
  };

  return (
    <div class="login">
      <form class="card" onSubmit={submit}>
        <h1>Orva</h1>
        {onboarding ? (
          <p>Welcome. Create the administrator account to start using this Orva server.</p>
        ) : (
          <p>Log in to manage your functions.</p>
        )}
        {expired && <Notice kind="warn">Your session ended. Log in again to continue where you were.</Notice>}
        <ErrorBanner error={error} />
        <Field label="Username">
          <input name="username" autocomplete="username" value={username} required
            onInput={(e) => setUsername(e.target.value)} />
        </Field>
        <Field label="Password" help={onboarding ? "At least 10 characters." : null}>
          <input name="password" type="password" autocomplete={onboarding ? "new-password" : "current-password"}
            value={password} required onInput={(e) => setPassword(e.target.value)} />
        </Field>
        {onboarding && (
          <Field label="Confirm password">
            <input name="confirm" type="password" autocomplete="new-password" value={confirm} required
              onInput={(e) => setConfirm(e.target.value)} />
          </Field>
        )}
        <button class="primary" type="submit" disabled={busy}>
          {onboarding ? "Create account" : "Log in"}
        </button>
      </form>
    </div>
  );
}
