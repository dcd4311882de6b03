// Settings › AI providers and Settings › Assistant (a chunk of its own, loaded with the Settings page): the
// provider configs the assistant may use (add one with its API key, which orvad stores encrypted and never shows
// again; Test connection; remove) and the assistant's settings (default provider and model, thinking level,
// approval policy, tool-step cap).
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
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

const enc = encodeURIComponent;
const KINDS = [
  ["anthropic", "Anthropic"],
  ["openai", "OpenAI-compatible (OpenAI, Ollama, vLLM, LM Studio, OpenRouter)"],
];
const KIND_NAMES = { anthropic: "Anthropic", openai: "OpenAI-compatible" };
const POLICIES = [
  ["all_writes", "Ask before every change (all writes)"],
  ["destructive_only", "Ask before deletions and other destructive changes only"],
  ["auto", "Never ask (the assistant changes things on its own)"],
];
const THINKING = ["off", "low", "medium", "high"];

function providerList(data) {
  return (data && (data.providers || data)) || [];
}

export function AssistantSettings() {
  const providers = useAsync(() => api.get("ai/providers"), []);
  return (
    <>
      <AiProviders providers={providers} />
      <AssistantPrefs providers={providerList(providers.data)} />
    </>
  );
}

function AiProviders({ providers }) {
  const empty = { kind: "anthropic", label: "", base_url: "", api_key: "" };
  const [form, setForm] = useState(empty);
  const [tested, setTested] = useState({}); // provider id -> {ok, text} or {error}
  const action = useAction();
  const testing = useAction();
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });

  const add = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { kind: form.kind, label: form.label.trim() };
      if (form.base_url.trim()) body.base_url = form.base_url.trim();
      if (form.api_key) body.api_key = form.api_key;
      await api.post("ai/providers", body);
      setForm(empty); // the key leaves the page: orvad keeps it encrypted and never shows it again
      providers.reload();
    });
  };
  const test = (p) =>
    testing.run(async () => {
      setTested((t) => ({ ...t, [p.id]: { busy: true } }));
      try {
        const r = await api.post(`ai/providers/${enc(p.id)}/test`);
        const models = r && Array.isArray(r.models) ? r.models.length : null;
        const ms = r && typeof r.latency_ms === "number" ? `, ${Math.round(r.latency_ms)} ms` : "";
        const text =
          r && r.ok === false
            ? `Failed: ${r.message || r.error || "the provider refused"}`
            : `Connection OK${models !== null ? ` (${models} model${models === 1 ? "" : "s"})` : ""}${ms}`;
        setTested((t) => ({ ...t, [p.id]: { ok: !(r && r.ok === false), text } }));
      } catch (error) {
        setTested((t) => ({ ...t, [p.id]: { error } }));
      }
    });
  const remove = (p) =>
    action.run(async () => {
      await api.del(`ai/providers/${enc(p.id)}`);
      providers.reload();
    });

  const rows = providerList(providers.data);
  const failed = Object.entries(tested).find(([, v]) => v.error);
  return (
    <section aria-label="AI providers">
      <h2>AI providers</h2>
      <p class="muted">
        The models the Assistant talks to. Keys are stored encrypted in orvad and never shown again; the assistant sends
        your messages and tool results to the provider you choose (docs/ASSISTANT.md, Privacy).
      </p>
      <ErrorBanner error={providers.error || action.error} />
      {failed && (
        <ErrorBanner
          error={{
            ...failed[1].error,
            hint: "Check the base URL and the API key; to change them, add the provider again under the same label.",
          }}
        />
      )}
      {providers.loading && !providers.data ? (
        <Loading />
      ) : (
        <Table
          label="AI providers"
          rows={rows}
          empty="No providers yet. Add one below."
          columns={[
            { title: "Label", key: "label" },
            { title: "Kind", render: (p) => KIND_NAMES[p.kind] || p.kind },
            { title: "Base URL", render: (p) => <code>{p.base_url || "(the provider's own)"}</code> },
            { title: "Key", render: (p) => (p.has_key ? `…${p.key_hint || ""}` : "none") },
            { title: "Added", render: (p) => ago(p.created_at) },
            {
              title: "Connection",
              render: (p) => {
                const t = tested[p.id];
                return (
                  <span data-testid={`test-${p.label}`}>
                    <button onClick={() => test(p)} disabled={t && t.busy}>
                      Test connection
                    </button>{" "}
                    {t && t.busy && <span class="muted">testing…</span>}
                    {t && t.text && <span class={t.ok ? "good" : "bad"}>{t.text}</span>}
                    {t && t.error && <span class="bad">Failed: {t.error.message}</span>}
                  </span>
                );
              },
            },
            {
              title: "",
              render: (p) => (
                <ConfirmButton
                  label="Remove"
                  question={`Remove the provider ${p.label}? Its key is deleted; conversations that used it stay.`}
                  onConfirm={() => remove(p)}
                />
              ),
            },
          ]}
        />
      )}
      <form class="form" onSubmit={add} aria-label="Add an AI provider">
        <h3>Add a provider</h3>
        <div class="row">
          <Field label="Kind">
            <select name="kind" value={form.kind} onChange={set("kind")}>
              {KINDS.map(([v, name]) => (
                <option key={v} value={v}>
                  {name}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Label" help="Your name for it, e.g. claude or local-ollama (an existing one is changed)">
            <input name="label" value={form.label} required maxLength={64} onInput={set("label")} />
          </Field>
        </div>
        <Field
          label="Base URL"
          help={
            form.kind === "openai"
              ? "Empty = OpenAI itself; a local Ollama: http://127.0.0.1:11434/v1"
              : "Empty = Anthropic's own API"
          }
        >
          <input name="base_url" type="url" value={form.base_url} onInput={set("base_url")} />
        </Field>
        <Field
          label="API key"
          help="Stored encrypted, never shown again. Empty for a local server without keys (or to keep the key of a label that exists)."
        >
          <input name="api_key" type="password" autocomplete="off" value={form.api_key} onInput={set("api_key")} />
        </Field>
        <div class="actions left">
          <button class="primary" type="submit" disabled={action.busy}>
            Add provider
          </button>
        </div>
      </form>
    </section>
  );
}

function AssistantPrefs({ providers }) {
  const settings = useAsync(() => api.get("ai/settings"), []);
  const [form, setForm] = useState(null);
  const [saved, setSaved] = useState(false);
  const save = useAction();
  useEffect(() => {
    if (settings.data) setForm({ ...settings.data });
  }, [settings.data]);
  const providerId = form && form.provider_id;
  const models = useAsync(
    async () => (providerId ? (await api.get(`ai/providers/${enc(providerId)}/models`)).models || [] : []),
    [providerId],
  );

  if (settings.error && !form) return <ErrorBanner error={settings.error} />;
  if (!form) return <Loading />;
  const set = (k, v) => {
    setSaved(false);
    setForm({ ...form, [k]: v });
  };
  const names = (models.data || []).map((m) => (typeof m === "string" ? m : m.id));
  const submit = (e) => {
    e.preventDefault();
    save.run(async () => {
      const body = {
        provider_id: form.provider_id || null,
        model: form.model || null,
        thinking: form.thinking,
        approval_policy: form.approval_policy,
        max_tool_steps: Number(form.max_tool_steps),
      };
      settings.setData(await api.put("ai/settings", body));
      setSaved(true);
    });
  };
  return (
    <form class="form" onSubmit={submit} aria-label="Assistant settings">
      <h2>Assistant</h2>
      <ErrorBanner error={save.error} />
      {saved && <Notice kind="ok">Saved. New replies use these settings.</Notice>}
      <div class="row">
        <Field label="Default provider">
          <select
            name="provider_id"
            value={form.provider_id || ""}
            onChange={(e) => setForm({ ...form, provider_id: e.target.value || null, model: null })}
          >
            <option value="">(none)</option>
            {providers.map((p) => (
              <option key={p.id} value={p.id}>
                {p.label}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Default model" help={models.error ? `Cannot list models: ${models.error.message}` : undefined}>
          {providerId && models.loading && !names.length ? (
            <select name="model" disabled>
              <option>loading models…</option>
            </select>
          ) : names.length ? (
            <select name="model" value={form.model || ""} onChange={(e) => set("model", e.target.value || null)}>
              <option value="">(choose a model)</option>
              {form.model && !names.includes(form.model) && <option value={form.model}>{form.model}</option>}
              {names.map((m) => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
            </select>
          ) : (
            <input
              name="model"
              value={form.model || ""}
              placeholder={providerId ? "model name" : "choose a provider first"}
              onInput={(e) => set("model", e.target.value)}
            />
          )}
        </Field>
      </div>
      <div class="row">
        <Field label="Thinking" help="How much the model reasons before answering (models that support it)">
          <select name="thinking" value={form.thinking} onChange={(e) => set("thinking", e.target.value)}>
            {THINKING.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Tool steps per reply" help="Ends a runaway loop of tool calls">
          <input
            name="max_tool_steps"
            type="number"
            min="1"
            max="200"
            value={form.max_tool_steps}
            onInput={(e) => set("max_tool_steps", e.target.value)}
          />
        </Field>
      </div>
      <Field label="Approval policy" help="Which tool calls wait for your Approve in the chat">
        <select
          name="approval_policy"
          value={form.approval_policy}
          onChange={(e) => set("approval_policy", e.target.value)}
        >
          {POLICIES.map(([v, name]) => (
            <option key={v} value={v}>
              {name}
            </option>
          ))}
        </select>
      </Field>
      <div class="actions left">
        <button class="primary" type="submit" disabled={save.busy}>
          Save assistant settings
        </button>
      </div>
    </form>
  );
}
