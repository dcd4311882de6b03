// Settings: change password, what this orvad is (version, build, data dir usage), the AI providers and the
// assistant's settings, and the apps connected through OAuth (claude.ai and other remote MCP connectors) with a
// button to cut each off.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { lazy } from "../components/lazy.jsx";
import {
  ago,
  bytes,
  ConfirmButton,
  ErrorBanner,
  Field,
  Loading,
  Notice,
  Table,
  useAction,
  useAsync,
} from "../components/ui.jsx";

// AI providers and the assistant's settings: a chunk of their own, loaded with this page
const AssistantSettings = lazy(() => import("./assistant-settings.jsx"), "AssistantSettings", "assistant settings");
// Storage (vacuum) and Sessions (issue 24): a chunk of their own too
const StorageCard = lazy(() => import("./settings-operate.jsx"), "StorageCard", "storage");
const SessionsCard = lazy(() => import("./settings-operate.jsx"), "SessionsCard", "sessions");
const BackupCard = lazy(() => import("./settings-backup.jsx"), "BackupCard", "backup"); // issue 24

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
      <AssistantSettings />
      <ConnectedApps />
      <StorageCard />
      <SessionsCard />
      <BackupCard />
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

// OAuth clients (remote MCP connectors such as claude.ai) holding tokens for /mcp. An orvad without the
// OAuth server answers 404: then the section says connectors are unavailable instead of showing an error.
function ConnectedApps() {
  const apps = useAsync(async () => {
    try {
      return (await api.get("oauth/connected-apps")).apps;
    } catch (error) {
      if (error.status === 404) return null;
      throw error;
    }
  }, []);
  const action = useAction();
  const disconnect = (app) =>
    action.run(async () => {
      await api.del(`oauth/connected-apps/${encodeURIComponent(app.client_id)}`);
      apps.reload();
    });
  return (
    <section aria-label="Connected apps">
      <h2>Connected apps</h2>
      <p class="muted">
        Apps you allowed to use this orvad's MCP server with OAuth (claude.ai and other remote connectors).
        Disconnecting one revokes its tokens at once; it must ask for your consent again to come back.
      </p>
      <ErrorBanner error={apps.error || action.error} />
      {apps.data === null && apps.loading ? (
        <Loading />
      ) : apps.data === null && apps.error ? null : apps.data === null ? (
        <p class="muted empty" data-testid="connected-apps-unavailable">
          Connected apps are not available on this orvad: it has no OAuth server for remote connectors. Agents can still
          connect with a channel token (Channels).
        </p>
      ) : (
        <Table
          label="Connected apps"
          rows={apps.data || []}
          rowKey={(a) => a.client_id}
          empty="No apps connected. A remote connector (such as claude.ai) appears here once you approve it."
          columns={[
            { title: "App", render: (a) => a.client_name || <code>{a.client_id}</code> },
            { title: "Access", render: (a) => (a.scopes || []).join(", ") || "—" },
            {
              title: "Returns to",
              render: (a) => (a.redirect_uris || []).map((u) => <div key={u}>{u}</div>),
            },
            { title: "Connected", render: (a) => ago(a.created_at) },
            { title: "Last used", render: (a) => ago(a.last_used_at) },
            {
              title: "",
              render: (a) => (
                <ConfirmButton
                  label="Disconnect"
                  question={`Disconnect ${a.client_name || a.client_id}? Its tokens stop working at once.`}
                  onConfirm={() => disconnect(a)}
                />
              ),
            },
          ]}
        />
      )}
    </section>
  );
}
