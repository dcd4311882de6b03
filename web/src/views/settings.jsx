// Settings: change password, and what this orvad is (version, build, data dir usage).
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { bytes, ErrorBanner, Field, Loading, Notice, useAction, useAsync } from "../components/ui.jsx";

export function SettingsView() {
  const info = useAsync(() => api.get("system/info"), []);
  const [pw, setPw] = useState({ current_password: "", new_password: "", confirm: "" });
  const [done, setDone] = useState(false);
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    if (pw.new_password !== pw.confirm) {
      action.setError({
        code: "VALIDATION",
        message: "The two new passwords differ.",
        hint: "Type the same password twice.",
      });
      return;
    }
    action.run(async () => {
      await api.post("auth/change-password", { current_password: pw.current_password, new_password: pw.new_password });
      setPw({ current_password: "", new_password: "", confirm: "" });
      setDone(true);
    });
  };
  const set = (k) => (e) => setPw({ ...pw, [k]: e.target.value });
  return (
    <section>
      <h1>Settings</h1>
      <h2>This server</h2>
      <ErrorBanner error={info.error} />
      {!info.data ? (
        <Loading />
      ) : (
        <dl class="facts">
          <dt>Orva version</dt>
          <dd data-testid="version">{info.data.version}</dd>
          <dt>Python</dt>
          <dd>{info.data.python}</dd>
          <dt>HTTP server</dt>
          <dd>{info.data.server}</dd>
          <dt>Runtimes</dt>
          <dd>{info.data.runtimes.join(", ")}</dd>
          <dt>Sandbox</dt>
          <dd>
            {info.data.nsjail || "nsjail not found"} (cgroups {info.data.cgroups || "none"})
          </dd>
          <dt>Data dir</dt>
          <dd>
            <code>{info.data.data_dir}</code>, {bytes(info.data.data_dir_bytes)} used
          </dd>
          <dt>Up for</dt>
          <dd>{Math.round(info.data.uptime_s)} s</dd>
        </dl>
      )}
      {info.data && info.data.host_warnings.length > 0 && (
        <Notice kind="warn">
          <div>
            {info.data.host_warnings.map((w) => (
              <div key={w}>{w}</div>
            ))}
          </div>
        </Notice>
      )}
      <h2>Change password</h2>
      <form class="form narrow" onSubmit={submit} aria-label="Change password">
        <ErrorBanner error={action.error} />
        {done && <Notice kind="ok">Password changed. Other sessions were logged out.</Notice>}
        <Field label="Current password">
          <input
            type="password"
            name="current_password"
            autocomplete="current-password"
            value={pw.current_password}
            required
            onInput={set("current_password")}
          />
        </Field>
        <Field label="New password" help="At least 10 characters.">
          <input
            type="password"
            name="new_password"
            autocomplete="new-password"
            value={pw.new_password}
            required
            onInput={set("new_password")}
          />
        </Field>
        <Field label="Confirm new password">
          <input
            type="password"
            name="confirm_password"
            autocomplete="new-password"
            value={pw.confirm}
            required
            onInput={set("confirm")}
          />
        </Field>
        <div class="actions left">
          <button class="primary" type="submit" disabled={action.busy}>
            Change password
          </button>
        </div>
      </form>
    </section>
  );
}
