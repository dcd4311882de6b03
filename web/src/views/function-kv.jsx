// The KV tab: the function's key-value state (the same its handlers reach with orva.kv). Browse by
// prefix a page at a time, open a key to see its value, version and expiry, edit it (saved only if
// nobody changed it meanwhile: if_version), delete it, or add one. Bytes values are shown as base64.
import { useEffect, useState } from "preact/hooks";
import { api, query } from "../api.js";
import { ConfirmButton, ErrorBanner, Field, Loading, Table, ago, bytes, useAction } from "../components/ui.jsx";

const PAGE = 50;
const keyPath = (fn, key) => `functions/${fn.id}/kv/${encodeURIComponent(key).replaceAll(".", "%2E")}`;

function expiry(iso) {
  if (!iso) return "never";
  const s = (Date.parse(iso) - Date.now()) / 1000;
  if (s <= 0) return "expired";
  if (s < 120) return `in ${Math.round(s)} s`;
  if (s < 7200) return `in ${Math.round(s / 60)} min`;
  if (s < 172800) return `in ${Math.round(s / 3600)} h`;
  return new Date(iso).toLocaleString();
}

function shown(record) {
  if (record.type === "bytes") return record.value.$bytes;
  return JSON.stringify(record.value, null, 2);
}

// What the editor's text means: JSON, or (for a bytes key) base64.
function parsed(text, type) {
  if (type === "bytes") return { $bytes: text.replace(/\s+/g, "") };
  try {
    return JSON.parse(text);
  } catch (e) {
    const error = new Error(`the value is not JSON: ${e.message}`);
    error.code = "VALIDATION";
    error.hint = 'Write JSON: a string needs quotes ("text"), numbers and objects as they are.';
    error.details = { field: "kv_value" };
    throw error;
  }
}

function ttlOf(text) {
  if (!String(text).trim()) return undefined;
  const n = Number(text);
  if (!(n > 0)) {
    const error = new Error("TTL must be a number of seconds above 0, or empty for never");
    error.code = "VALIDATION";
    error.details = { field: "kv_ttl" };
    throw error;
  }
  return n;
}

function useKeys(fn, prefix) {
  const [state, setState] = useState({ items: null, cursor: null, usage: null, busy: false, error: null });
  const load = async (cursor) => {
    setState((s) => ({ ...s, busy: true, error: null }));
    try {
      const page = await api.get(`functions/${fn.id}/kv${query({ prefix, limit: PAGE, cursor })}`);
      setState((s) => ({
        items: cursor ? [...(s.items || []), ...page.keys] : page.keys,
        cursor: page.next_cursor,
        usage: page.usage,
        busy: false,
        error: null,
      }));
    } catch (error) {
      setState((s) => ({ ...s, busy: false, error }));
    }
  };
  useEffect(() => {
    load(null);
  }, [fn.id, prefix]);
  return { ...state, reload: () => load(null), more: () => load(state.cursor) };
}

export function KvTab({ fn }) {
  const [filter, setFilter] = useState("");
  const [prefix, setPrefix] = useState("");
  const [open, setOpen] = useState(null); // the key shown in the editor, or "" for a new key
  const keys = useKeys(fn, prefix);
  return (
    <div>
      <p class="muted">
        The function's own key-value state: its handlers read and write it with <code>orva.kv</code>. Values are JSON or
        bytes, at most 1 MiB each.
        {keys.usage &&
          ` ${keys.usage.keys} of ${keys.usage.max_keys} keys, ${bytes(keys.usage.bytes)} of ${bytes(keys.usage.max_bytes)}.`}
      </p>
      <form
        class="form row"
        aria-label="Find keys"
        onSubmit={(e) => {
          e.preventDefault();
          setPrefix(filter);
        }}
      >
        <Field label="Prefix">
          <input name="prefix" value={filter} placeholder="users/" onInput={(e) => setFilter(e.target.value)} />
        </Field>
        <button type="submit">Show keys</button>
        <button type="button" onClick={() => setOpen("")}>
          New key
        </button>
      </form>
      <ErrorBanner error={keys.error} />
      {keys.items === null ? (
        <Loading what="Loading keys" />
      ) : (
        <Table
          label="Keys"
          rows={keys.items}
          rowKey={(k) => k.key}
          selected={open || undefined}
          onRow={(k) => setOpen(k.key)}
          empty={prefix ? `No keys start with ${prefix}.` : "No keys yet."}
          columns={[
            { title: "Key", render: (k) => <code>{k.key}</code> },
            { title: "Type", key: "type" },
            { title: "Size", render: (k) => bytes(k.size) },
            { title: "Version", key: "version" },
            { title: "Expires", render: (k) => expiry(k.expires_at) },
            { title: "Updated", render: (k) => ago(k.updated_at) },
          ]}
        />
      )}
      {keys.cursor && (
        <div class="actions left">
          <button onClick={keys.more} disabled={keys.busy}>
            Load more
          </button>
        </div>
      )}
      {open !== null && (
        <KeyEditor
          key={open}
          fn={fn}
          name={open}
          onClose={() => setOpen(null)}
          onChanged={(next) => {
            keys.reload();
            if (next !== undefined) setOpen(next);
          }}
        />
      )}
    </div>
  );
}

function KeyEditor({ fn, name, onClose, onChanged }) {
  const isNew = name === "";
  const [record, setRecord] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [key, setKey] = useState(name);
  const [text, setText] = useState(isNew ? '""' : "");
  const [type, setType] = useState("json");
  const [ttl, setTtl] = useState("");
  const action = useAction();
  const load = async () => {
    try {
      const got = await api.get(keyPath(fn, name));
      setRecord(got);
      setText(shown(got));
      setType(got.type);
      setTtl("");
      setLoadError(null);
    } catch (e) {
      setLoadError(e);
    }
  };
  useEffect(() => {
    if (!isNew) load();
  }, [name]);
  const save = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { value: parsed(text, type) };
      const seconds = ttlOf(ttl);
      if (seconds !== undefined) body.ttl_s = seconds;
      else if (record && record.expires_at) {
        const left = (Date.parse(record.expires_at) - Date.now()) / 1000;
        if (left > 0) body.ttl_s = left; // an edit keeps the expiry unless a new TTL is given
      }
      body.if_version = record ? record.version : 0; // saved only if nobody wrote it meanwhile
      await api.put(keyPath(fn, isNew ? key : name), body);
      if (isNew) onChanged(key);
      else {
        await load();
        onChanged();
      }
    });
  };
  const remove = () =>
    action.run(async () => {
      await api.del(keyPath(fn, name));
      onChanged();
      onClose();
    });
  if (!isNew && !record && !loadError) return <Loading what={`Loading ${name}`} />;
  return (
    <section class="card" aria-label={isNew ? "New key" : `Key ${name}`}>
      <header class="page-head">
        <h2>{isNew ? "New key" : <code>{name}</code>}</h2>
        <button class="link" onClick={onClose} aria-label="Close">
          ×
        </button>
      </header>
      <ErrorBanner error={loadError || action.error} />
      {record && (
        <p class="muted" data-testid="kv-meta">
          {record.type} · {bytes(record.size)} · version {record.version} · expires {expiry(record.expires_at)}
          {record.expires_at && ` (${new Date(record.expires_at).toLocaleString()})`} · updated {ago(record.updated_at)}
        </p>
      )}
      <form class="form" onSubmit={save} aria-label={isNew ? "Add a key" : "Edit the key"}>
        {isNew && (
          <Field label="Key">
            <input name="key" value={key} required onInput={(e) => setKey(e.target.value)} />
          </Field>
        )}
        {isNew && (
          <Field label="Type">
            <select name="kv_type" value={type} onChange={(e) => setType(e.target.value)}>
              <option value="json">JSON</option>
              <option value="bytes">Bytes (base64)</option>
            </select>
          </Field>
        )}
        <Field label={type === "bytes" ? "Value (base64)" : "Value (JSON)"}>
          <textarea
            name="kv_value"
            rows={Math.min(20, Math.max(4, text.split("\n").length + 1))}
            spellcheck={false}
            value={text}
            onInput={(e) => setText(e.target.value)}
          />
        </Field>
        <Field
          label="TTL (seconds)"
          help={record && record.expires_at ? "Empty keeps the current expiry." : "Empty: never expires."}
        >
          <input name="kv_ttl" inputmode="decimal" value={ttl} onInput={(e) => setTtl(e.target.value)} />
        </Field>
        <div class="actions left">
          <button type="submit" class="primary" disabled={action.busy}>
            {isNew ? "Add key" : "Save"}
          </button>
          {!isNew && record && (
            <ConfirmButton label="Delete key" question={`Delete the key ${name}?`} onConfirm={remove} />
          )}
        </div>
      </form>
    </section>
  );
}
