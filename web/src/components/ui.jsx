// Small pieces every view uses: error banner, async loading, tables, dialogs, form fields.
import { cloneElement } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, isReachable, watchConnection } from "../api.js";

// What the dashboard tells its user to do about an error. The API's hints name API paths (right for
// curl); here they become the button or tab to use. Unknown codes keep the API's hint unless it is
// about API paths or placeholders, which mean nothing on a page.
const UI_HINTS = {
  NOT_DEPLOYED: "Deploy first: press Deploy on the Code tab.",
  BUILDING: "The build is still running: watch it on the Code tab, then try again.",
  BUILD_FAILED: "Open the build log in the Deployments tab (click the failed version), fix the code and Deploy again.",
  NOT_ACTIVE:
    "Activate the function on its Settings tab, or deploy a version that builds (the Deployments tab has each build's log).",
  VERSION_GCD: "That version was removed to free space: pick one still listed in the Deployments tab.",
  VERSION_NOT_FOUND: "Pick a version listed in the Deployments tab.",
  INSUFFICIENT_STORAGE: "Free space on the disk holding orvad's data dir, then try again.",
  UNREACHABLE: "Check that orvad is running; this page notices by itself when it is back.",
  TOOL_NAME_COLLISION: "Two of the chosen functions get the same tool name: untick one of them, or rename it.",
  KV_VERSION_CONFLICT:
    "The key was written meanwhile (by a handler or someone else): close it and open it again to see its current value.",
  KV_QUOTA_EXCEEDED: "The function holds as many KV keys or bytes as it may: delete keys on the KV tab first.",
  CRON_LIMIT_REACHED:
    "The function has as many schedules as it may: delete one it no longer needs on its Cron tab first.",
  JOB_NOT_CANCELLABLE:
    "This job has ended already: reload the page to see how; Retry puts a dead or cancelled job back.",
  JOB_NOT_RETRYABLE: "This job is still pending, running or has succeeded: reload the page and wait for it to end.",
  NOT_REPLAYABLE:
    "This execution cannot run again as it was captured (a signed function, or a body cut at 1 MiB): send a new request from the function's Test tab.",
  VACUUM_RUNNING: "A vacuum is running already: reload Settings in a moment to see what it gave back.",
};

function pathy(hint) {
  return /\/api\/v1\b|\b(GET|POST|PUT|PATCH|DELETE)\s+\/|[{}]|\bdetails\./.test(hint);
}

function fieldLabel(field) {
  return field.replace(/^pool\./, "pool ").replaceAll("_", " ");
}

export function uiHint(error) {
  if (UI_HINTS[error.code]) return UI_HINTS[error.code];
  if (error.hint && !pathy(error.hint)) return error.hint;
  const field = error.details && error.details.field;
  if (field) return `Correct the highlighted field (${fieldLabel(field)}) and try again.`;
  if (error.code === "UNAUTHORIZED") return "Log in again.";
  if (error.code === "FORBIDDEN") return "Your account or key lacks the permission for this.";
  if (error.code === "NOT_FOUND") return "It may have been deleted meanwhile: go back to the list and reload.";
  return "";
}

// The control a `details.field` names, looked up around the banner: data-field first (e.g.
// "pool.max_warm"), then the control's name, then the field's first part ("env_vars.X" -> env_vars).
function fieldControl(scope, field) {
  const candidates = [field, field.split(".").pop(), field.split(".")[0]];
  for (const name of candidates) {
    const esc = CSS.escape(name);
    const found = scope.querySelector(`[data-field="${esc}"]`) || scope.querySelector(`[name="${esc}"]`);
    if (found) return found;
  }
  return null;
}

function markInvalid(control) {
  control.setAttribute("aria-invalid", "true");
  control.classList.add("field-invalid");
  const clear = () => {
    control.removeAttribute("aria-invalid");
    control.classList.remove("field-invalid");
  };
  control.addEventListener("input", clear, { once: true });
  control.addEventListener("change", clear, { once: true });
  control.focus();
  return clear;
}

export function ErrorBanner({ error, onClose }) {
  const box = useRef(null);
  const field = error && error.details && typeof error.details.field === "string" ? error.details.field : null;
  useEffect(() => {
    if (!field || !box.current) return undefined;
    const scope = box.current.closest("form, dialog, section") || document;
    const control = fieldControl(scope, field) || fieldControl(document, field);
    return control ? markInvalid(control) : undefined;
  }, [error, field]);
  if (!error) return null;
  const code = error.code ? `${error.code}: ` : "";
  const hint = uiHint(error);
  return (
    <div class="banner error" role="alert" ref={box}>
      <div>
        <strong>{code}</strong>
        {error.message}
        {hint && <div class="hint">Hint: {hint}</div>}
      </div>
      {onClose && (
        <button class="link" onClick={onClose} aria-label="Dismiss">
          ×
        </button>
      )}
    </div>
  );
}

// Whether orvad answers (api.js watches every request and stream).
export function useConnection() {
  const [up, setUp] = useState(isReachable());
  useEffect(() => {
    setUp(isReachable());
    return watchConnection(setUp);
  }, []);
  return up;
}

// Shown above every view while orvad does not answer; goes away by itself when it does.
export function ConnectionBanner() {
  const up = useConnection();
  if (up) return null;
  return (
    <div class="banner warn connection-lost" role="alert" data-testid="connection-lost">
      <div>
        <strong>Cannot reach orvad, retrying…</strong>
        <div class="hint">
          Live figures are paused and nothing you type is lost; the page carries on when orvad answers.
        </div>
      </div>
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
  // a load that failed because orvad was away is tried again when it is back
  const failedOffline = state.error && state.error.code === "UNREACHABLE";
  useEffect(() => (failedOffline ? watchConnection((up) => up && reload()) : undefined), [failedOffline, reload]);
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
  return {
    items,
    error: first.error || extra.error,
    loading: first.loading,
    reload: first.reload,
    more,
    hasMore,
    busy: extra.busy,
  };
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

// A click or Enter on a button or link inside a clickable row is that control's, not the row's.
function fromControl(e) {
  return e.target !== e.currentTarget && Boolean(e.target.closest("button, a, input, select, textarea, summary"));
}

export function Table({ columns, rows, empty = "Nothing here yet.", onRow, rowKey = (r) => r.id, label, selected }) {
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
              class={[onRow ? "clickable" : "", selected !== undefined && rowKey(row) === selected ? "selected" : ""]
                .join(" ")
                .trim()}
              aria-current={selected !== undefined && rowKey(row) === selected ? "true" : undefined}
              tabIndex={onRow ? 0 : undefined}
              onClick={onRow ? (e) => !fromControl(e) && onRow(row) : undefined}
              onKeyDown={onRow ? (e) => e.key === "Enter" && !fromControl(e) && onRow(row) : undefined}
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
