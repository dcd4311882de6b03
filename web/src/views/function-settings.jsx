// Settings (limits, env vars, modes, pool), secrets (names only) and the routes pointing at a function.
import { useState } from "preact/hooks";
import { api, query } from "../api.js";
import { RouteManager } from "../components/route-manager.jsx";
import {
  ago,
  ConfirmButton,
  ErrorBanner,
  Field,
  Loading,
  Notice,
  Table,
  useAction,
  useAsync,
} from "../components/ui.jsx";

const NUMBERS = ["memory_mb", "cpus", "timeout_ms", "max_concurrency", "rate_limit_per_min"];
const POOL_NUMBERS = ["min_warm", "max_warm", "idle_ttl_seconds", "target_concurrency"];

function envText(env) {
  return Object.entries(env || {})
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
}

function parseEnv(text) {
  const env = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf("=");
    if (at < 1) {
      throw {
        code: "VALIDATION",
        message: `not NAME=value: ${line}`,
        hint: "one variable per line",
        details: { field: "env_vars" },
      };
    }
    env[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  return env;
}

function schemaText(schema) {
  return schema ? JSON.stringify(schema, null, 2) : "";
}

// input_schema: the JSON Schema agents see as the function's MCP tool arguments; empty = null (the default)
function parseSchema(text) {
  if (!text.trim()) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw {
      code: "VALIDATION",
      message: `the input schema is not valid JSON: ${e.message}`,
      hint: 'Write a JSON object such as {"type": "object", "properties": {...}}, or leave it empty for the default.',
      details: { field: "input_schema" },
    };
  }
}

// cors_origins: null inherits the server's ORVA_CORS_ORIGINS, [] turns orvad's CORS off, else the list
function corsMode(origins) {
  if (origins == null) return "inherit";
  return origins.length ? "list" : "off";
}

function corsBody(mode, text) {
  if (mode === "inherit") return null;
  if (mode === "off") return [];
  const origins = text.split(/[\s,]+/).filter(Boolean);
  if (!origins.length) {
    throw {
      code: "VALIDATION",
      message: "no origin listed",
      hint: "list at least one origin, or choose off",
      details: { field: "cors_origins" },
    };
  }
  return origins;
}

// may_invoke: the functions this one may call with orva.invoke, one name per line; * alone for any
function mayInvokeText(names) {
  return (names || []).join("\n");
}

function parseMayInvoke(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

export function SettingsTab({ fn, setFn }) {
  const [form, setForm] = useState({
    ...fn,
    env: envText(fn.env_vars),
    cors_mode: corsMode(fn.cors_origins),
    cors_text: (fn.cors_origins || []).join("\n"),
    schema_text: schemaText(fn.input_schema),
    may_invoke_text: mayInvokeText(fn.may_invoke),
    egress_allow_text: (fn.egress_allow || []).join("\n"),
  });
  const [egressAllowEdited, setEgressAllowEdited] = useState(false);
  const [schemaEdited, setSchemaEdited] = useState(false);
  const [mayInvokeEdited, setMayInvokeEdited] = useState(false);
  const pool = useAsync(() => api.get(`pool/config${query({ function_id: fn.id })}`), [fn.id]);
  const [poolForm, setPoolForm] = useState(null);
  const save = useAction();
  const [saved, setSaved] = useState("");
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const poolValues = poolForm || pool.data;

  const submit = (e) => {
    e.preventDefault();
    save.run(async () => {
      setSaved("");
      const body = {
        description: form.description,
        network_mode: form.network_mode,
        auth_mode: form.auth_mode,
        concurrency_policy: form.concurrency_policy,
        env_vars: parseEnv(form.env),
        csp_sandbox: Boolean(form.csp_sandbox),
        signature_version: Number(form.signature_version),
        cors_origins: corsBody(form.cors_mode, form.cors_text),
      };
      for (const k of NUMBERS) body[k] = Number(form[k]);
      // sent only when edited: an orvad (or a function) without the field is left as it is
      if (schemaEdited) body.input_schema = parseSchema(form.schema_text);
      if (mayInvokeEdited) body.may_invoke = parseMayInvoke(form.may_invoke_text);
      if (egressAllowEdited) body.egress_allow = form.egress_allow_text.split(/[\s,]+/).filter(Boolean);
      if (form.capture_requests !== undefined) body.capture_requests = Boolean(form.capture_requests);
      if (poolForm) {
        // one request: orvad checks the function fields and the pool together and saves all or nothing
        body.pool = { scale_to_zero: Boolean(poolForm.scale_to_zero) };
        for (const k of POOL_NUMBERS) body.pool[k] = Number(poolForm[k]);
      }
      const { pool: savedPool, ...updated } = await api.put(`functions/${fn.id}`, body);
      if (savedPool) {
        pool.setData((current) => ({ ...current, ...savedPool }));
        setPoolForm(null);
      }
      setFn(updated);
      setForm((current) => ({
        ...current,
        cors_mode: corsMode(updated.cors_origins),
        cors_text: (updated.cors_origins || []).join("\n"),
        schema_text: schemaText(updated.input_schema),
        may_invoke_text: mayInvokeText(updated.may_invoke),
        egress_allow_text: (updated.egress_allow || []).join("\n"),
      }));
      setEgressAllowEdited(false);
      setSchemaEdited(false);
      setMayInvokeEdited(false);
      setSaved("Saved. Running workers are replaced in the background.");
    });
  };
  const setStatus = (status) => save.run(async () => setFn(await api.put(`functions/${fn.id}`, { status })));

  // an error about the input schema is shown under that field, every other one at the top
  const details = (save.error && save.error.details) || {};
  const schemaError =
    details.field === "input_schema" || (details.fields || []).includes("input_schema") ? save.error : null;

  return (
    <form class="form" onSubmit={submit} aria-label="Function settings">
      <ErrorBanner error={schemaError ? pool.error : save.error || pool.error} />
      {saved && <Notice kind="ok">{saved}</Notice>}
      <Field label="Description">
        <input name="description" value={form.description} onInput={set("description")} />
      </Field>
      <div class="row">
        <Field label="Memory (MB)">
          <input name="memory_mb" type="number" value={form.memory_mb} onInput={set("memory_mb")} />
        </Field>
        <Field label="CPUs">
          <input name="cpus" type="number" step="0.1" value={form.cpus} onInput={set("cpus")} />
        </Field>
        <Field label="Timeout (ms)">
          <input name="timeout_ms" type="number" value={form.timeout_ms} onInput={set("timeout_ms")} />
        </Field>
      </div>
      <div class="row">
        <Field label="Max concurrency" help="0 = only the pool limits">
          <input name="max_concurrency" type="number" value={form.max_concurrency} onInput={set("max_concurrency")} />
        </Field>
        <Field label="When busy">
          <select name="concurrency_policy" value={form.concurrency_policy} onChange={set("concurrency_policy")}>
            <option value="queue">queue</option>
            <option value="reject">reject (429)</option>
          </select>
        </Field>
        <Field label="Rate limit / min per client" help="0 = none">
          <input
            name="rate_limit_per_min"
            type="number"
            value={form.rate_limit_per_min}
            onInput={set("rate_limit_per_min")}
          />
        </Field>
      </div>
      <div class="row">
        <Field label="Network">
          <select name="network_mode" value={form.network_mode} onChange={set("network_mode")}>
            <option value="none">none</option>
            <option value="egress">egress</option>
          </select>
        </Field>
        <Field label="Who may invoke">
          <select name="auth_mode" value={form.auth_mode} onChange={set("auth_mode")}>
            <option value="none">anyone</option>
            <option value="api_key">API key</option>
            <option value="signed">signed</option>
          </select>
        </Field>
        {form.auth_mode === "signed" && (
          <Field label="Signature form" help="v2 signs method, path and query too; v1 only for callers of older Orva">
            <select name="signature_version" value={form.signature_version} onChange={set("signature_version")}>
              <option value="2">v2: timestamp.METHOD.path?query.body</option>
              <option value="1">v1: timestamp.body (legacy)</option>
            </select>
          </Field>
        )}
      </div>
      <label class="check">
        <input
          type="checkbox"
          name="csp_sandbox"
          checked={form.csp_sandbox}
          onChange={(e) => setForm({ ...form, csp_sandbox: e.target.checked })}
        />
        Sandbox this function's pages (recommended: a page it serves on the dashboard's origin cannot act as you)
      </label>
      {form.capture_requests !== undefined && (
        <label class="check">
          <input
            type="checkbox"
            name="capture_requests"
            checked={form.capture_requests}
            onChange={(e) => setForm({ ...form, capture_requests: e.target.checked })}
          />
          Keep each execution's request (credentials redacted, body up to 1 MiB) so it can be read and replayed
        </label>
      )}
      <div class="row">
        <Field
          label="Cross-origin calls (CORS)"
          help="Which other sites' pages may call this function from the browser (with an API key, never your session)"
        >
          <select name="cors_mode" value={form.cors_mode} onChange={set("cors_mode")}>
            <option value="inherit">the server's setting (ORVA_CORS_ORIGINS)</option>
            <option value="list">only these origins</option>
            <option value="off">off: orvad adds no CORS headers (the handler may)</option>
          </select>
        </Field>
        {form.cors_mode === "list" && (
          <Field
            label="Allowed origins"
            help="One per line, as the browser sends it: https://app.example.com, or * for any site"
          >
            <textarea
              name="cors_origins"
              rows="3"
              value={form.cors_text}
              onInput={set("cors_text")}
              placeholder="https://app.example.com"
            />
          </Field>
        )}
      </div>
      {form.network_mode === "egress" && (
        <Field
          label="Egress allow list"
          help="Addresses, ranges or hostnames this function may reach, one per line (no *.wildcards); empty: everywhere the Firewall's rules allow. Non-empty: nothing else is reachable."
        >
          <textarea
            name="egress_allow"
            rows="3"
            value={form.egress_allow_text}
            placeholder={"203.0.113.10\napi.example.com"}
            onInput={(e) => {
              setEgressAllowEdited(true);
              setForm({ ...form, egress_allow_text: e.target.value });
            }}
          />
        </Field>
      )}
      <Field
        label="Functions it may call (orva.invoke)"
        help="Names of the functions this one may call from its code, one per line; * alone for any function; empty for none. A listed function's auth mode is satisfied by this list. Names are looked up at each call: after a rename, list the new name."
      >
        <textarea
          name="may_invoke"
          rows="3"
          value={form.may_invoke_text}
          placeholder={"resize\nnotify"}
          onInput={(e) => {
            setMayInvokeEdited(true);
            setForm({ ...form, may_invoke_text: e.target.value });
          }}
        />
      </Field>
      <Field label="Environment variables" help="NAME=value, one per line. Use Secrets for anything sensitive.">
        <textarea name="env_vars" rows="4" value={form.env} onInput={set("env")} />
      </Field>
      <Field
        label="Input schema (MCP tool arguments)"
        help="A JSON Schema object (type object) that tells AI agents what to send this function as a tool; empty = the default (body, query, headers, method, path)."
      >
        <textarea
          name="input_schema"
          rows="5"
          value={form.schema_text}
          placeholder='{"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}'
          onInput={(e) => {
            setSchemaEdited(true);
            setForm({ ...form, schema_text: e.target.value });
          }}
        />
      </Field>
      {schemaError && <ErrorBanner error={schemaError} />}
      <h3>Warm pool</h3>
      {!poolValues ? (
        <Loading />
      ) : (
        <div class="row">
          {POOL_NUMBERS.map((k) => (
            <Field key={k} label={k.replaceAll("_", " ")}>
              <input
                name={k}
                data-field={`pool.${k}`}
                type="number"
                value={poolValues[k]}
                onInput={(e) => setPoolForm({ ...poolValues, [k]: e.target.value })}
              />
            </Field>
          ))}
          <label class="check">
            <input
              type="checkbox"
              name="scale_to_zero"
              data-field="pool.scale_to_zero"
              checked={poolValues.scale_to_zero}
              onChange={(e) => setPoolForm({ ...poolValues, scale_to_zero: e.target.checked })}
            />
            scale to zero when idle
          </label>
        </div>
      )}
      <div class="actions left">
        <button class="primary" type="submit" disabled={save.busy}>
          Save settings
        </button>
        {fn.status === "active" && (
          <button type="button" onClick={() => setStatus("inactive")}>
            Deactivate
          </button>
        )}
        {fn.status === "inactive" && (
          <button type="button" onClick={() => setStatus("active")}>
            Activate
          </button>
        )}
      </div>
    </form>
  );
}

export function SecretsTab({ fn }) {
  const list = useAsync(() => api.get(`functions/${fn.id}/secrets`), [fn.id]);
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const action = useAction();
  const add = (e) => {
    e.preventDefault();
    action.run(async () => {
      await api.post(`functions/${fn.id}/secrets`, { key, value });
      setKey("");
      setValue("");
      list.reload();
    });
  };
  const remove = (k) =>
    action.run(async () => {
      await api.del(`functions/${fn.id}/secrets/${encodeURIComponent(k)}`);
      list.reload();
    });
  return (
    <div>
      <p class="muted">
        Secrets reach the handler as environment variables. Values are encrypted at rest and never shown again.
      </p>
      <ErrorBanner error={list.error || action.error} />
      <Table
        label="Secrets"
        rows={list.data ? list.data.secrets : []}
        rowKey={(s) => s.key}
        empty="No secrets."
        columns={[
          { title: "Name", render: (s) => <code>{s.key}</code> },
          { title: "Updated", render: (s) => ago(s.updated_at) },
          {
            title: "",
            render: (s) => (
              <ConfirmButton label="Delete" question={`Delete secret ${s.key}?`} onConfirm={() => remove(s.key)} />
            ),
          },
        ]}
      />
      <form class="form row" onSubmit={add} aria-label="Set a secret">
        <Field label="Name">
          <input name="secret_key" value={key} required onInput={(e) => setKey(e.target.value)} />
        </Field>
        <Field label="Value">
          <input
            name="secret_value"
            type="password"
            autocomplete="off"
            value={value}
            required
            onInput={(e) => setValue(e.target.value)}
          />
        </Field>
        <button type="submit" disabled={action.busy}>
          Set secret
        </button>
      </form>
    </div>
  );
}

export function RoutesTab({ fn }) {
  return <RouteManager functionId={fn.id} />;
}
