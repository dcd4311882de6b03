// First-run admin creation (proven by the setup token) and login; both set the session cookie.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner, Field, Notice, useAction } from "../components/ui.jsx";

function SetupTokenHelp() {
  return (
    <span>
      Proves you run this server: the bootstrap admin key in <code>admin.key</code> in orvad's data directory (
      <code>data/admin.key</code> under <code>make run</code>, <code>/var/lib/orva/admin.key</code> in Docker; orvad
      names the file when it starts). Copy it with <code>cat &lt;data-dir&gt;/admin.key</code>.
    </span>
  );
}

export function LoginView({ onboarding, expired, onDone }) {
  const [username, setUsername] = useState(onboarding ? "admin" : "");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [setupToken, setSetupToken] = useState("");
  const { busy, error, setError, run } = useAction();

  const submit = (e) => {
    e.preventDefault();
    if (onboarding && password !== confirm) {
      setError({ code: "VALIDATION", message: "The two passwords differ.", hint: "Type the same password twice." });
      return;
    }
    run(async () => {
      const res = onboarding
        ? await api.post("auth/onboard", { username, password, setup_token: setupToken.trim() }, { quiet401: true })
        : await api.post("auth/login", { username, password }, { quiet401: true });
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
        {onboarding && (
          <Field label="Setup token" help={<SetupTokenHelp />}>
            <input
              name="setup_token"
              type="password"
              autocomplete="off"
              spellcheck={false}
              placeholder="orva_…"
              value={setupToken}
              required
              onInput={(e) => setSetupToken(e.target.value)}
            />
          </Field>
        )}
        <Field label="Username">
          <input
            name="username"
            autocomplete="username"
            value={username}
            required
            onInput={(e) => setUsername(e.target.value)}
          />
        </Field>
        <Field label="Password" help={onboarding ? "At least 10 characters." : null}>
          <input
            name="password"
            type="password"
            autocomplete={onboarding ? "new-password" : "current-password"}
            value={password}
            required
            onInput={(e) => setPassword(e.target.value)}
          />
        </Field>
        {onboarding && (
          <Field label="Confirm password">
            <input
              name="confirm"
              type="password"
              autocomplete="new-password"
              value={confirm}
              required
              onInput={(e) => setConfirm(e.target.value)}
            />
          </Field>
        )}
        <button class="primary" type="submit" disabled={busy}>
          {onboarding ? "Create account" : "Log in"}
        </button>
      </form>
    </div>
  );
}
