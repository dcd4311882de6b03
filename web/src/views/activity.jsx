// Activity (issue 24): what happened on this orvad, newest first: every API call a key or login made (reads
// too; "Hide reads" leaves them out), MCP and assistant tool calls, webhook deliveries, host commands. The
// audit log (GET /api/v1/activity), filtered by source, text, time, failures and reads, paged with Load more,
// and live over the events stream (`activity`). A live row is only shown, never a reason to read again: this
// page's own reads (the list, the stream opening) are rows too, and reading on each would never end.
import { useEffect, useState } from "preact/hooks";
import { query, subscribe } from "../api.js";
import { ErrorBanner, Field, LoadMore, Loading, Table, ago, usePaged } from "../components/ui.jsx";
import { navigate } from "../router.js";

const SOURCES = {
  "": "every source",
  api: "API calls",
  mcp: "MCP tool calls",
  assistant: "assistant tool calls",
  webhook: "webhook deliveries",
  cli: "host commands",
};
const RANGES = { "": "any time", 1: "last hour", 24: "last day", 168: "last week" };
const READ_METHODS = ["GET", "HEAD", "OPTIONS"]; // the rows ?hide_reads=true leaves out

function sinceFor(hours) {
  return hours ? new Date(Date.now() - hours * 3600 * 1000).toISOString() : "";
}

// the list's filters applied to a live row (the server applies them to the pages)
function matches(row, f) {
  if (f.source && row.source !== f.source) return false;
  if (f.failures && row.status < 400) return false;
  if (f.hide_reads && READ_METHODS.includes(row.method)) return false;
  if (f.q) {
    const needle = f.q.toLowerCase();
    return ["path", "method", "actor_name", "target_id"].some((k) => (row[k] || "").toLowerCase().includes(needle));
  }
  return true;
}

function statusClass(status) {
  return status >= 500 ? "badge error" : status >= 400 ? "badge timeout" : "badge success";
}

export function ActivityView({ query: q }) {
  const filters = {
    source: q.source || "",
    q: q.q || "",
    hours: q.hours || "",
    failures: q.failures || "",
    hide_reads: q.hide_reads || "",
  };
  const [text, setText] = useState(filters.q);
  useEffect(() => setText(filters.q), [filters.q]);
  const list = usePaged(
    (cursor) =>
      `activity${query({
        source: filters.source,
        q: filters.q,
        since: sinceFor(filters.hours),
        status_min: filters.failures ? 400 : "",
        hide_reads: filters.hide_reads ? "true" : "",
        limit: 50,
        cursor,
      })}`,
    "activity",
    [filters.source, filters.q, filters.hours, filters.failures, filters.hide_reads],
  );
  const [live, setLive] = useState([]);
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    setLive([]);
    setConnected(false);
    return subscribe("events?types=activity", {
      activity: (row) => {
        if (!matches(row, filters)) return;
        setLive((rows) => [row, ...rows.filter((r) => r.id !== row.id)].slice(0, 200));
      },
      open: () => setConnected(true),
      error: () => setConnected(false),
    });
  }, [filters.source, filters.q, filters.failures, filters.hide_reads]);

  const go = (changes) => navigate(`/activity${query({ ...filters, ...changes })}`);
  const loaded = list.items || [];
  const seen = new Set(live.map((r) => r.id));
  const rows = [...live, ...loaded.filter((r) => !seen.has(r.id))];
  const columns = [
    { title: "When", render: (r) => <span title={r.ts}>{ago(r.ts)}</span> },
    { title: "Source", render: (r) => <span data-source={r.source}>{r.source}</span> },
    {
      title: "Actor",
      render: (r) => (
        <span title={`${r.actor_kind} ${r.actor_id || ""}`}>{r.actor_name || r.actor_id || r.actor_kind}</span>
      ),
    },
    {
      title: "What",
      render: (r) => (
        <code>
          {r.method} {r.path}
        </code>
      ),
    },
    { title: "Status", render: (r) => <span class={statusClass(r.status)}>{r.status}</span> },
    { title: "From", render: (r) => r.client_ip || "—" },
  ];
  return (
    <section>
      <header class="page-head">
        <h1>Activity</h1>
        <span class={connected ? "live on" : "live"} data-testid="live">
          {connected ? "● live" : "○ connecting…"}
        </span>
      </header>
      <p class="muted">
        Every call made to this orvad's API with a key or a login (reads too, this page's own among them: hide them to
        see what changed), and every MCP tool call, assistant tool call and webhook delivery: who, what, when and how it
        ended. Never bodies or secrets.
      </p>
      <form
        class="form row"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          go({ q: text.trim() });
        }}
      >
        <Field label="Source">
          <select name="source" value={filters.source} onChange={(e) => go({ source: e.target.value })}>
            {Object.entries(SOURCES).map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Search">
          <input
            type="search"
            name="q"
            maxLength={200}
            placeholder="path, method, actor, id"
            value={text}
            onInput={(e) => setText(e.target.value)}
          />
        </Field>
        <Field label="Time">
          <select name="hours" value={filters.hours} onChange={(e) => go({ hours: e.target.value })}>
            {Object.entries(RANGES).map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
        </Field>
        <label class="check">
          <input
            type="checkbox"
            name="failures"
            checked={Boolean(filters.failures)}
            onChange={(e) => go({ failures: e.target.checked ? "1" : "" })}
          />{" "}
          Failures only
        </label>
        <label class="check">
          <input
            type="checkbox"
            name="hide_reads"
            checked={Boolean(filters.hide_reads)}
            onChange={(e) => go({ hide_reads: e.target.checked ? "1" : "" })}
          />{" "}
          Hide reads
        </label>
        <button type="submit">Search</button>
      </form>
      <ErrorBanner error={list.error} />
      {list.loading && !list.items ? (
        <Loading />
      ) : (
        <Table
          label="Activity"
          rows={rows}
          columns={columns}
          empty={
            filters.source || filters.q || filters.hours || filters.failures || filters.hide_reads
              ? "Nothing matches these filters."
              : "Nothing has happened yet: changes, tool calls and webhook deliveries appear here as they happen."
          }
        />
      )}
      <LoadMore paged={list} />
    </section>
  );
}
