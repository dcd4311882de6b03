// API keys: create (permissions, expiry; the plaintext shown once) and revoke.
import { useState } from "preact/hooks";
import { allPages, api } from "../api.js";
import {
  ago,
  ConfirmButton,
  CopyButton,
  Dialog,
  ErrorBanner,
  Field,
  Loading,
  Table,
  useAction,
  useAsync,
} from "../components/ui.jsx";

const PERMISSIONS = ["invoke", "read", "write", "admin"];

export function KeysView() {
  const list = useAsync(() => allPages("keys", "keys").then((keys) => ({ keys })), []);
  const [form, setForm] = useState({ name: "", permissions: ["invoke", "read"], days: "90" });
  const [created, setCreated] = useState(null);
  const action = useAction();

  const toggle = (p) =>
    setForm({
      ...form,
      permissions: form.permissions.includes(p) ? form.permissions.filter((x) => x !== p) : [...form.permissions, p],
    });
  const create = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { name: form.name, permissions: form.permissions };
      if (form.days) body.expires_in_days = Number(form.days);
      setCreated(await api.post("keys", body));
      setForm({ ...form, name: "" });
      list.reload();
    });
  };
  const revoke = (k) =>
    action.run(async () => {
      await api.del(`keys/${k.id}`);
      list.reload();
    });

  return (
    <section>
      <h1>API keys</h1>
      <p class="muted">
        Keys let scripts, CI and the <code>orva</code> CLI call the API with <code>X-Orva-API-Key</code>.
      </p>
      <ErrorBanner error={list.error || action.error} />
      {list.loading && !list.data ? (
        <Loading />
      ) : (
        <Table
          label="API keys"
          rows={list.data.keys}
          empty="No API keys."
          columns={[
            { title: "Name", key: "name" },
            { title: "Prefix", render: (k) => <code>{k.prefix}…</code> },
            { title: "Permissions", render: (k) => k.permissions.join(", ") },
            { title: "Created", render: (k) => ago(k.created_at) },
            { title: "Expires", render: (k) => (k.expires_at ? new Date(k.expires_at).toLocaleDateString() : "never") },
            { title: "Last used", render: (k) => ago(k.last_used_at) },
            {
              title: "",
              render: (k) => (
                <ConfirmButton
                  label="Revoke"
                  question={`Revoke ${k.name}? Calls using it fail at once.`}
                  onConfirm={() => revoke(k)}
                />
              ),
            },
          ]}
        />
      )}
      <h2>Create a key</h2>
      <form class="form" onSubmit={create} aria-label="Create an API key">
        <div class="row">
          <Field label="Name">
            <input
              name="key_name"
              data-field="name"
              value={form.name}
              required
              onInput={(e) => setForm({ ...form, name: e.target.value })}
            />
          </Field>
          <Field label="Expires in (days)" help="empty = never">
            <input
              name="expires_in_days"
              type="number"
              min="1"
              value={form.days}
              onInput={(e) => setForm({ ...form, days: e.target.value })}
            />
          </Field>
        </div>
        <fieldset class="checks" data-field="permissions">
          <legend>Permissions</legend>
          {PERMISSIONS.map((p) => (
            <label key={p} class="check">
              <input
                type="checkbox"
                name={`perm_${p}`}
                checked={form.permissions.includes(p)}
                onChange={() => toggle(p)}
              />{" "}
              {p}
            </label>
          ))}
        </fieldset>
        <div class="actions left">
          <button class="primary" type="submit" disabled={action.busy}>
            Create key
          </button>
        </div>
      </form>
      <Dialog title="Your new API key" open={Boolean(created)} onClose={() => setCreated(null)}>
        {created && (
          <>
            <p>Copy it now: this is the only time Orva shows it.</p>
            <pre class="log" id="copy-source" data-testid="new-key">
              {created.key}
            </pre>
            <div class="actions">
              <CopyButton text={created.key} />
              <button class="primary" onClick={() => setCreated(null)}>
                Done
              </button>
            </div>
          </>
        )}
      </Dialog>
    </section>
  );
}
