// Invocations: a filterable list that grows live over SSE; /invocations/<id> opens one with its logs.
import { useEffect, useState } from "preact/hooks";
import { allPages, api, query, subscribe } from "../api.js";
import { ErrorBanner, Field, LoadMore, Loading, StatusBadge, useAsync, usePaged } from "../components/ui.jsx";
import { navigate } from "../router.js";
import { ExecutionTable } from "../components/execution-table.jsx";
import { CapturedRequest } from "../components/captured-request.jsx";

const STATUSES = ["success", "error", "timeout", "crashed", "rejected", "killed", "shutting_down"];
const RANGES = { "": "any time", 1: "last hour", 24: "last day", 168: "last week" };

function sinceFor(hours) {
  return hours ? new Date(Date.now() - hours * 3600 * 1000).toISOString() : "";
}

export function InvocationsView({ params, query: q }) {
  if (params.id) return <ExecutionDetail id={params.id} />;
  const filters = { function_id: q.function_id || "", status: q.status || "", hours: q.hours || "" };
  const functions = useAsync(() => allPages("functions", "functions"), []);
  const list = usePaged(
    (cursor) =>
      `executions${query({
        function_id: filters.function_id,
        status: filters.status,
        since: sinceFor(filters.hours),
        limit: 100,
        cursor,
      })}`,
    "executions",
    [filters.function_id, filters.status, filters.hours],
  );
  const [live, setLive] = useState([]);
  const [connected, setConnected] = useState(false);

  useEffect(() => {
    setLive([]);
    setConnected(false);
    // live rows: execution events matching the filters, newest first, above the loaded page
    return subscribe(`events${query({ types: "execution", function_id: filters.function_id })}`, {
      execution: (x) => {
        if (filters.status && x.status !== filters.status) return;
        setLive((rows) => [x, ...rows.filter((r) => r.id !== x.id)].slice(0, 200));
      },
      open: () => setConnected(true),
      error: () => setConnected(false), // EventSource reconnects by itself
    });
  }, [filters.function_id, filters.status]);

  const setFilter = (k) => (e) => navigate(`/invocations${query({ ...filters, [k]: e.target.value })}`);
  const names = Object.fromEntries((functions.data || []).map((f) => [f.id, f.name]));
  const loaded = list.items || [];
  const seen = new Set(live.map((x) => x.id));
  const rows = [...live, ...loaded.filter((x) => !seen.has(x.id))];

  return (
    <section>
      <header class="page-head">
        <h1>Invocations</h1>
        <span class={connected ? "live on" : "live"} data-testid="live">
          {connected ? "● live" : "○ connecting…"}
        </span>
      </header>
      <div class="form row" role="search">
        <Field label="Function">
          <select
            name="function"
            data-field="function_id"
            value={filters.function_id}
            onChange={setFilter("function_id")}
          >
            <option value="">all functions</option>
            {(functions.data || []).map((f) => (
              <option key={f.id} value={f.id}>
                {f.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Status">
          <select name="status" value={filters.status} onChange={setFilter("status")}>
            <option value="">any status</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </Field>
        <Field label="Time">
          <select name="hours" data-field="since" value={filters.hours} onChange={setFilter("hours")}>
            {Object.entries(RANGES).map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <ErrorBanner error={list.error || functions.error} />
      {list.loading && !list.items ? <Loading /> : <ExecutionTable rows={rows} showFunction names={names} />}
      <LoadMore paged={list} />
    </section>
  );
}

function ExecutionDetail({ id }) {
  const x = useAsync(() => Promise.all([api.get(`executions/${id}`), api.get(`executions/${id}/logs`)]), [id]);
  if (x.error) return <ErrorBanner error={x.error} />;
  if (!x.data) return <Loading />;
  const [row, logs] = x.data;
  const fields = [
    "id",
    "function_id",
    "version",
    "trigger",
    "method",
    "path",
    "status_code",
    "cold_start",
    "duration_ms",
    "queue_ms",
    "request_bytes",
    "response_bytes",
    "error_code",
    "error_message",
    "started_at",
    "finished_at",
    "trace_id",
    "span_id",
    "parent_span_id",
  ];
  return (
    <section>
      <a href="#/invocations" class="muted">
        ← Invocations
      </a>
      <h1>
        Execution <StatusBadge status={row.status} />
        {row.outlier && (
          <span class="badge warn" title="slower than twice the function's rolling p95">
            outlier
          </span>
        )}
      </h1>
      {row.trace_id && (
        <p>
          <a href={`#/traces/${row.trace_id}?execution=${row.id}`} data-testid="execution-trace">
            View its trace (waterfall) →
          </a>
        </p>
      )}
      <dl class="facts">
        {fields
          .filter((f) => row[f] !== null && row[f] !== undefined && row[f] !== "")
          .map((f) => (
            <>
              <dt>{f.replaceAll("_", " ")}</dt>
              <dd>{f === "function_id" ? <a href={`#/functions/${row[f]}`}>{row[f]}</a> : String(row[f])}</dd>
            </>
          ))}
      </dl>
      <CapturedRequest id={row.id} key={row.id} />
      <h2>Logs</h2>
      <pre class="log" data-testid="execution-logs">
        {logs.logs || "(nothing printed)"}
      </pre>
      {logs.truncated && <p class="muted">The log was cut at its size limit.</p>}
    </section>
  );
}
