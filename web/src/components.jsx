// Small pieces every view uses: error banner, async loading, tables, dialogs, form fields.
import { cloneElement } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api } from "./api.js";

export function ErrorBanner({ error, onClose }) {
  if (!error) return null;
  const code = error.code ? `${error.code}: ` : "";
  return (
    <div class="banner error" role="alert">
      <div>
        <strong>{code}</strong>
        {error.message}
        {error.hint && <div class="hint">Hint: {error.hint}</div>}
      </div>
      {onClose && (
        <button class="link" onClick={onClose} aria-label="Dismiss">
          ×
        </button>
      )}
    </div>
  );
}

export function Notice({ children, kind = "info" }) {
  return (
    <div class={`banner ${kind}`} role="status">
      {children}
    </div>
  );
}

// Runs `load` on mount and whenever `deps` change; returns {data, error, loading, reload, setData}.
export function useAsync(load, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    try {
      const data = await load();
      if (mine === seq.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === seq.current) setState((s) => ({ ...s, error, loading: false }));
    }
  }, deps);
  useEffect(() => {
    reload();
  }, [reload]);
  const setData = (fn) => setState((s) => ({ ...s, data: typeof fn === "function" ? fn(s.data) : fn }));
  return { ...state, reload, setData };
}

// Wraps an action so its error lands in the banner and a busy flag disables the button.
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (fn) => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, setError, run };
}

// A newest-first list read page by page (`{<key>: [...], next_cursor}`): nothing is cut off
// silently, the user asks for more. `decorate(items)` may enrich a page (extra requests).
export function usePaged(path, key, deps = [], decorate = async (items) => items) {
  const [extra, setExtra] = useState({ items: [], cursor: null, busy: false, error: null });
  const first = useAsync(async () => {
    const page = await api.get(path(null));
    return { items: await decorate(page[key]), cursor: page.next_cursor };
  }, deps);
  useEffect(() => setExtra({ items: [], cursor: null, busy: false, error: null }), [first.data]);
  const cursor = extra.cursor || (first.data && first.data.cursor);
  const more = async () => {
    setExtra((x) => ({ ...x, busy: true }));
    try {
      const page = await api.get(path(cursor));
      const items = await decorate(page[key]);
      setExtra((x) => ({ items: [...x.items, ...items], cursor: page.next_cursor || "", busy: false, error: null }));
    } catch (error) {
      setExtra((x) => ({ ...x, busy: false, error }));
    }
  };
  const items = first.data ? [...first.data.items, ...extra.items] : null;
  const hasMore = Boolean(cursor) && extra.cursor !== "";
  return { items, error: first.error || extra.error, loading: first.loading, reload: first.reload, more, hasMore,
    busy: extra.busy };
}

export function LoadMore({ paged }) {
  if (!paged.hasMore) return null;
  return (
    <div class="actions left">
      <button onClick={paged.more} disabled={paged.busy}>
        Load more
      </button>
    </div>
  );
}

export function Loading({ what = "Loading" }) {
  return <p class="muted">{what}…</p>;
}

export function Table({ columns, rows, empty = "Nothing here yet.", onRow, rowKey = (r) => r.id, label }) {
  if (!rows || rows.length === 0) return <p class="muted empty">{empty}</p>;
  return (
    <div class="table-wrap">
      <table aria-label={label}>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.title}>{c.title}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr
              key={rowKey(row)}
              class={onRow ? "clickable" : ""}
              tabIndex={onRow ? 0 : undefined}
              onClick={onRow ? () => onRow(row) : undefined}
              onKeyDown={onRow ? (e) => e.key === "Enter" && onRow(row) : undefined}
            >
              {columns.map((c) => (
                <td key={c.title}>{c.render ? c.render(row) : row[c.key]}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

let fieldSeq = 0;

// A labelled control: the label names exactly the one child control; the help text describes it.
export function Field({ label, children, help }) {
  const id = useMemo(() => `field-${++fieldSeq}`, []);
  const control = cloneElement(children, { id, "aria-describedby": help ? `${id}-help` : undefined });
  return (
    <div class="field">
      <label for={id} class="label">
        {label}
      </label>
      {control}
      {help && (
        <span id={`${id}-help`} class="help">
          {help}
        </span>
      )}
    </div>
  );
}

// A native <dialog>: focus trapping and Escape come from the browser.
export function Dialog({ title, open, onClose, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} onClose={onClose} aria-label={title}>
      <h2>{title}</h2>
      {children}
    </dialog>
  );
}

export function ConfirmButton({ label, question, onConfirm, class: cls = "danger" }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button class={cls} onClick={() => setOpen(true)}>
        {label}
      </button>
      <Dialog title={label} open={open} onClose={() => setOpen(false)}>
        <p>{question}</p>
        <div class="actions">
          <button onClick={() => setOpen(false)}>Cancel</button>
          <button
            class="danger"
            onClick={async () => {
              setOpen(false);
              await onConfirm();
            }}
          >
            {label}
          </button>
        </div>
      </Dialog>
    </>
  );
}

export function CopyButton({ text }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // clipboard needs a secure context; select the text so the user can copy it by hand
      const el = document.getElementById("copy-source");
      if (el) window.getSelection().selectAllChildren(el);
    }
    setCopied(true);
  };
  return <button onClick={copy}>{copied ? "Copied" : "Copy"}</button>;
}

export function Tabs({ tabs, active, onChange }) {
  return (
    <div class="tabs" role="tablist">
      {tabs.map((t) => (
        <button
          key={t.id}
          role="tab"
          aria-selected={t.id === active}
          class={t.id === active ? "tab active" : "tab"}
          onClick={() => onChange(t.id)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function StatusBadge({ status }) {
  return <span class={`badge ${status}`}>{status}</span>;
}

export function ago(iso) {
  if (!iso) return "—";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
