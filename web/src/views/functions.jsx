// Functions: the list with last-hour figures, and the create form.
import { useState } from "preact/hooks";
import { api, query } from "../api.js";
import { ago, Dialog, ErrorBanner, Field, LoadMore, Loading, StatusBadge, Table, useAction, useAsync, usePaged } from "../components.jsx";
import { navigate } from "../router.js";

const PAGE = 50;

// The last hour's invocations and errors, and each function's newest deployment.
async function decorate(functions) {
  const { functions: hour } = await api.get("executions/summary");
  const byId = Object.fromEntries(hour.map((s) => [s.function_id, s]));
  const latest = await Promise.all(
    functions.map((f) => api.get(`functions/${f.id}/deployments?limit=1`).then((d) => d.deployments[0] || null)),
  );
  return functions.map((f, i) => ({ ...f, hour: byId[f.id] || { invocations: 0, errors: 0 }, latest: latest[i] }));
}

export function FunctionsView() {
  const paged = usePaged((cursor) => `functions${query({ limit: PAGE, cursor })}`, "functions", [], decorate);
  const { items: data, error, loading, reload } = paged;
  const [creating, setCreating] = useState(false);
  return (
    <section>
      <header class="page-head">
        <h1>Functions</h1>
        <button class="primary" onClick={() => setCreating(true)}>
          New function
        </button>
      </header>
      <ErrorBanner error={error} />
      {loading && !data ? (
        <Loading />
      ) : (
        <Table
          label="Functions"
          rows={data || []}
          empty="No functions yet. Create one with “New function”."
          onRow={(f) => navigate(`/functions/${f.id}`)}
          columns={[
            { title: "Name", render: (f) => <a href={`#/functions/${f.id}`}>{f.name}</a> },
            { title: "Runtime", key: "runtime" },
            { title: "Status", render: (f) => <StatusBadge status={f.status} /> },
            { title: "Last deploy", render: (f) => (f.latest ? `${ago(f.latest.submitted_at)} (${f.latest.status})` : "never") },
            { title: "Invocations (1 h)", render: (f) => f.hour.invocations },
            { title: "Errors (1 h)", render: (f) => <span class={f.hour.errors ? "bad" : ""}>{f.hour.errors}</span> },
          ]}
        />
      )}
      <LoadMore paged={paged} />
      <CreateFunction open={creating} onClose={() => setCreating(false)} onCreated={(fn) => {
        reload();
        navigate(`/functions/${fn.id}?tab=code`);
      }} />
    </section>
  );
}

function CreateFunction({ open, onClose, onCreated }) {
  const runtimes = useAsync(() => api.get("runtimes").then((r) => r.runtimes), []);
  const [form, setForm] = useState({ name: "", runtime: "", memory_mb: 128, timeout_ms: 30000, cpus: 1,
    network_mode: "none", auth_mode: "none" });
  const { busy, error, run } = useAction();
  const set = (field) => (e) => setForm({ ...form, [field]: e.target.value });
  const choices = runtimes.data || [];
  const runtime = form.runtime || (choices[0] && choices[0].id) || "";

  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      const body = { ...form, runtime, memory_mb: Number(form.memory_mb), timeout_ms: Number(form.timeout_ms),
        cpus: Number(form.cpus) };
      const fn = await api.post("functions", body);
      onClose();
      onCreated(fn);
    });
  };

  return (
    <Dialog title="New function" open={open} onClose={onClose}>
      <form onSubmit={submit} class="form">
        <ErrorBanner error={error || runtimes.error} />
        <Field label="Name" help="Letters, digits, - and _; it is part of the URL /fn/<name>.">
          <input name="name" value={form.name} required autofocus onInput={set("name")} />
        </Field>
        <Field label="Runtime">
          <select name="runtime" value={runtime} onChange={set("runtime")}>
            {choices.map((r) => (
              <option key={r.id} value={r.id}>
                {r.id} ({r.language} {r.version})
              </option>
            ))}
          </select>
        </Field>
        <div class="row">
          <Field label="Memory (MB)">
            <input name="memory_mb" type="number" min="16" value={form.memory_mb} onInput={set("memory_mb")} />
          </Field>
          <Field label="CPUs">
            <input name="cpus" type="number" step="0.1" min="0.1" value={form.cpus} onInput={set("cpus")} />
          </Field>
          <Field label="Timeout (ms)">
            <input name="timeout_ms" type="number" min="100" value={form.timeout_ms} onInput={set("timeout_ms")} />
          </Field>
        </div>
        <div class="row">
          <Field label="Network">
            <select name="network_mode" value={form.network_mode} onChange={set("network_mode")}>
              <option value="none">none (no network)</option>
              <option value="egress">egress (outbound internet only)</option>
            </select>
          </Field>
          <Field label="Who may invoke">
            <select name="auth_mode" value={form.auth_mode} onChange={set("auth_mode")}>
              <option value="none">anyone (public)</option>
              <option value="api_key">API key with invoke permission</option>
              <option value="signed">signed requests (HMAC)</option>
            </select>
          </Field>
        </div>
        <div class="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy}>
            Create
          </button>
        </div>
      </form>
    </Dialog>
  );
}
