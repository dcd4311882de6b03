// Functions: the list (one request: each item carries its last deployment) with last-hour figures,
// a search box (?q=, matched by orvad on name and description), copy buttons, and the create form.
import { useEffect, useState } from "preact/hooks";
import { api, functionUrl, query } from "../api.js";
import {
  ago,
  Dialog,
  ErrorBanner,
  Field,
  LoadMore,
  Loading,
  StatusBadge,
  Table,
  useAction,
  useAsync,
  usePaged,
} from "../components/ui.jsx";
import { CopyValue } from "../components/copy.jsx";
import { navigate } from "../router.js";

const PAGE = 50;
const SEARCH_DELAY_MS = 250;
const NO_HOUR = { invocations: 0, errors: 0 };

// Each id by its shortest prefix no other listed id shares, at least 8 characters (as the CLI shows
// them): ids are UUIDv7, so ids made in the same minute share their first 8.
function shortIds(ids) {
  const sorted = [...new Set(ids)].sort();
  const common = (a, b) => {
    let n = 0;
    while (n < a.length && a[n] === b[n]) n++;
    return n;
  };
  const out = {};
  sorted.forEach((id, i) => {
    const shared = Math.max(i ? common(id, sorted[i - 1]) : 0, i + 1 < sorted.length ? common(id, sorted[i + 1]) : 0);
    let length = Math.max(8, shared + 1);
    if (id[length - 1] === "-") length++;
    out[id] = id.slice(0, length);
  });
  return out;
}

function lastDeploy(d) {
  if (!d) return "never";
  return `${ago(d.finished_at || d.submitted_at)} (v${d.version}, ${d.status})`;
}

export function FunctionsView({ query: q }) {
  const search = q.q || "";
  const paged = usePaged((cursor) => `functions${query({ limit: PAGE, cursor, q: search })}`, "functions", [search]);
  // the last hour's invocations and errors of every function, one request for the whole list
  const hour = useAsync(
    () => api.get("executions/summary").then((r) => Object.fromEntries(r.functions.map((x) => [x.function_id, x]))),
    [],
  );
  const { items: data, error, loading, reload } = paged;
  const [creating, setCreating] = useState(false);
  const [typed, setTyped] = useState(search);
  useEffect(() => setTyped(search), [search]);
  useEffect(() => {
    if (typed === search) return undefined;
    const timer = setTimeout(() => navigate(`/functions${query({ q: typed })}`, { replace: true }), SEARCH_DELAY_MS);
    return () => clearTimeout(timer);
  }, [typed]);
  const figures = (f) => (hour.data && hour.data[f.id]) || NO_HOUR;
  const short = shortIds((data || []).map((f) => f.id));
  return (
    <section>
      <header class="page-head">
        <h1>Functions</h1>
        <button class="primary" onClick={() => setCreating(true)}>
          New function
        </button>
      </header>
      <div class="search" role="search">
        <input
          type="search"
          name="q"
          aria-label="Search functions"
          placeholder="Search by name or description"
          value={typed}
          onInput={(e) => setTyped(e.target.value)}
        />
      </div>
      <ErrorBanner error={error || hour.error} />
      {loading && !data ? (
        <Loading />
      ) : (
        <Table
          label="Functions"
          rows={data || []}
          empty={search ? `No function matches “${search}”.` : "No functions yet. Create one with “New function”."}
          onRow={(f) => navigate(`/functions/${f.id}`)}
          columns={[
            { title: "Name", render: (f) => <a href={`#/functions/${f.id}`}>{f.name}</a> },
            {
              title: "Id",
              render: (f) => (
                <span class="copy">
                  <code title={f.id}>{short[f.id]}</code>
                  <CopyValue text={f.id} what={`id of ${f.name}`} />
                </span>
              ),
            },
            {
              title: "Invoke URL",
              render: (f) => (
                <span class="copy">
                  <code title={functionUrl(f.name)}>/fn/{f.name}</code>
                  <CopyValue text={functionUrl(f.name)} what={`invoke URL of ${f.name}`} />
                </span>
              ),
            },
            { title: "Runtime", key: "runtime" },
            { title: "Status", render: (f) => <StatusBadge status={f.status} /> },
            { title: "Last deploy", render: (f) => lastDeploy(f.last_deployment) },
            {
              title: "Last hour",
              render: (f) => (
                <span>
                  {figures(f).invocations} calls
                  {figures(f).errors > 0 && <span class="bad">, {figures(f).errors} errors</span>}
                </span>
              ),
            },
          ]}
        />
      )}
      <LoadMore paged={paged} />
      <CreateFunction
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(fn) => {
          reload();
          navigate(`/functions/${fn.id}?tab=code`);
        }}
      />
    </section>
  );
}

// The rule orvad enforces (interface 9): the pattern is checked by the browser before the form is sent.
const NAME_RULE =
  "1 to 63 characters: lowercase letters a-z, digits 0-9, - and _, starting with a letter. " +
  "It is part of the URL /fn/<name>.";
const NAME_PATTERN = "[a-z][a-z0-9_\\-]{0,62}";

// The starter functions (GET /api/v1/templates, orvad/templates): offered by "Start from", grouped by runtime.
const TEMPLATE_GROUPS = [
  ["python", "Python templates"],
  ["node", "Node templates"],
];

// Create from a template: the same calls as without one, then its secrets and its code (deploy-inline).
async function createFromTemplate(body, template, values) {
  const settings = template.settings || {};
  const envVars = {};
  for (const v of template.env) if (!v.secret && values[v.name]) envVars[v.name] = values[v.name];
  const fn = await api.post("functions", {
    ...body,
    ...(settings.description ? { description: settings.description } : {}),
    ...(settings.may_invoke ? { may_invoke: settings.may_invoke } : {}),
    ...(settings.input_schema ? { input_schema: settings.input_schema } : {}),
    ...(Object.keys(envVars).length ? { env_vars: envVars } : {}),
  });
  for (const v of template.env) {
    if (v.secret && values[v.name])
      await api.post(`functions/${fn.id}/secrets`, { key: v.name, value: values[v.name] });
  }
  await api.post(`functions/${fn.id}/deploy-inline`, {
    code: template.files[template.entrypoint],
    filename: template.entrypoint,
    ...(template.dependencies_file ? { dependencies: template.files[template.dependencies_file] } : {}),
  });
  return fn;
}

function CreateFunction({ open, onClose, onCreated }) {
  const runtimes = useAsync(() => api.get("runtimes").then((r) => r.runtimes), []);
  const templates = useAsync(() => api.get("templates").then((r) => r.templates), []);
  const [template, setTemplate] = useState(null); // the chosen template (manifest and files), or null: empty
  const [values, setValues] = useState({}); // its env and secret values by name
  const [form, setForm] = useState({
    name: "",
    runtime: "",
    memory_mb: 128,
    timeout_ms: 30000,
    cpus: 1,
    network_mode: "none",
    auth_mode: "none",
  });
  const { busy, error, run } = useAction();
  const set = (field) => (e) => setForm({ ...form, [field]: e.target.value });
  const choices = (runtimes.data || []).filter((r) => !template || r.language === template.runtime);
  const runtime = (choices.some((r) => r.id === form.runtime) && form.runtime) || (choices[0] && choices[0].id) || "";
  const choose = (e) => {
    const name = e.target.value;
    if (!name) {
      setTemplate(null);
      return;
    }
    run(async () => {
      const t = await api.get(`templates/${name}`);
      const settings = t.settings || {};
      setTemplate(t);
      setValues({});
      setForm({
        ...form,
        name: form.name || t.name,
        runtime: "",
        network_mode: settings.network_mode || "none",
        memory_mb: settings.memory_mb || 128,
        timeout_ms: settings.timeout_ms || 30000,
        cpus: settings.cpus || 1,
      });
    });
  };

  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      const body = {
        ...form,
        runtime,
        memory_mb: Number(form.memory_mb),
        timeout_ms: Number(form.timeout_ms),
        cpus: Number(form.cpus),
      };
      const fn = template ? await createFromTemplate(body, template, values) : await api.post("functions", body);
      onClose();
      onCreated(fn);
    });
  };

  return (
    <Dialog title="New function" open={open} onClose={onClose}>
      <form onSubmit={submit} class="form">
        <ErrorBanner error={error || runtimes.error || templates.error} />
        <Field label="Name" help={NAME_RULE}>
          <input
            name="name"
            value={form.name}
            required
            autofocus
            pattern={NAME_PATTERN}
            maxLength={63}
            title={NAME_RULE}
            autocapitalize="off"
            autocomplete="off"
            spellcheck={false}
            onInput={set("name")}
          />
        </Field>
        <Field
          label="Start from"
          help={template ? template.description : "An empty function: write its code in the editor next."}
        >
          <select name="template" value={template ? template.name : ""} onChange={choose}>
            <option value="">Empty function</option>
            {TEMPLATE_GROUPS.map(([language, label]) => (
              <optgroup key={language} label={label}>
                {(templates.data || [])
                  .filter((t) => t.runtime === language)
                  .map((t) => (
                    <option key={t.name} value={t.name} title={t.description}>
                      {t.title}
                    </option>
                  ))}
              </optgroup>
            ))}
          </select>
        </Field>
        {template &&
          template.env.map((v) => (
            <Field
              key={v.name}
              label={`${v.secret ? "Secret" : "Environment variable"} ${v.name}${v.required ? " (required)" : ""}`}
              help={`${v.description}${v.default ? ` Default: ${v.default}.` : ""}${v.secret ? " Stored encrypted." : ""}`}
            >
              <input
                name={`env-${v.name}`}
                type={v.secret ? "password" : "text"}
                value={values[v.name] || ""}
                placeholder={v.default || ""}
                autocomplete="off"
                onInput={(e) => setValues({ ...values, [v.name]: e.target.value })}
              />
            </Field>
          ))}
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
