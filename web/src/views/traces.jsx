// Traces: every execution is a span, handlers add their own (orva.trace.span). /traces lists traces
// (newest first, filterable); /traces/<trace id> shows one as a waterfall: each span a bar placed by its
// start offset and sized by its duration, indented under its parent. An execution's detail links here.
import { useState } from "preact/hooks";
import { allPages, api, query } from "../api.js";
import {
  ErrorBanner,
  Field,
  LoadMore,
  Loading,
  StatusBadge,
  Table,
  ago,
  useAsync,
  usePaged,
} from "../components/ui.jsx";
import { navigate } from "../router.js";

const RANGES = { "": "any time", 1: "last hour", 24: "last day", 168: "last week" };

function sinceFor(hours) {
  return hours ? new Date(Date.now() - hours * 3600 * 1000).toISOString() : "";
}

function ms(value) {
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(value < 10 ? 2 : 1)} ms`;
}

export function TracesView({ params, query: q }) {
  if (params.id) return <TraceDetail id={params.id} execution={q.execution || ""} />;
  const filters = { function_id: q.function_id || "", status: q.status || "", hours: q.hours || "" };
  const functions = useAsync(() => allPages("functions", "functions"), []);
  const list = usePaged(
    (cursor) =>
      `traces${query({
        function_id: filters.function_id,
        status: filters.status,
        since: sinceFor(filters.hours),
        limit: 50,
        cursor,
      })}`,
    "traces",
    [filters.function_id, filters.status, filters.hours],
  );
  const setFilter = (k) => (e) => navigate(`/traces${query({ ...filters, [k]: e.target.value })}`);
  const columns = [
    { title: "Started", render: (t) => ago(t.started_at) },
    { title: "Function", key: "function_name" },
    { title: "Status", render: (t) => <StatusBadge status={t.status === "ok" ? "success" : "error"} /> },
    { title: "Spans", key: "span_count" },
    { title: "Duration", render: (t) => ms(t.duration_ms) },
    { title: "Trace", render: (t) => <code>{t.trace_id.slice(0, 12)}…</code> },
  ];
  return (
    <section>
      <header class="page-head">
        <h1>Traces</h1>
      </header>
      <div class="form row" role="search">
        <Field label="Function">
          <select name="function" value={filters.function_id} onChange={setFilter("function_id")}>
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
            <option value="ok">ok</option>
            <option value="error">error</option>
          </select>
        </Field>
        <Field label="Time">
          <select name="hours" value={filters.hours} onChange={setFilter("hours")}>
            {Object.entries(RANGES).map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <ErrorBanner error={list.error || functions.error} />
      {list.loading && !list.items ? (
        <Loading />
      ) : (
        <Table
          label="Traces"
          rows={list.items || []}
          columns={columns}
          empty="No traces yet: invoke a function and its trace shows here."
          onRow={(t) => navigate(`/traces/${t.trace_id}`)}
        />
      )}
      <LoadMore paged={list} />
    </section>
  );
}

function TraceDetail({ id, execution }) {
  const trace = useAsync(() => api.get(`traces/${id}`), [id]);
  const [chosen, setChosen] = useState(null);
  if (trace.error) return <ErrorBanner error={trace.error} />;
  if (!trace.data) return <Loading />;
  const t = trace.data;
  const total = Math.max(t.duration_ms, 0.001);
  const picked = chosen || t.spans.find((s) => s.kind === "execution" && s.execution_id === execution) || null;
  return (
    <section>
      <a href="#/traces" class="muted">
        ← Traces
      </a>
      <h1>
        Trace <StatusBadge status={t.status === "ok" ? "success" : "error"} />
      </h1>
      <p class="muted">
        <code>{t.trace_id}</code> · {t.span_count} spans · {t.executions} executions · {ms(t.duration_ms)}
        {t.truncated && " · only the first spans are shown"}
      </p>
      <div class="waterfall" role="table" aria-label="Trace waterfall" data-testid="waterfall">
        <div class="wf-row wf-head" role="row">
          <span role="columnheader">Span</span>
          <span role="columnheader">0 ms … {ms(t.duration_ms)}</span>
        </div>
        {t.spans.map((s) => {
          const left = (s.offset_ms / total) * 100;
          const width = Math.max((s.duration_ms / total) * 100, 0.4);
          const failed = s.status !== "ok" && s.status !== "success";
          const key = `${s.kind}:${s.execution_id}:${s.span_id}`;
          const isPicked = picked && `${picked.kind}:${picked.execution_id}:${picked.span_id}` === key;
          return (
            <div
              key={key}
              class={`wf-row${isPicked ? " picked" : ""}`}
              role="row"
              data-kind={s.kind}
              data-span={s.span_id}
              tabIndex={0}
              onClick={() => setChosen(s)}
              onKeyDown={(e) => e.key === "Enter" && setChosen(s)}
            >
              <span class="wf-name" role="cell" style={{ paddingLeft: `${s.depth * 1.1}em` }}>
                {s.kind === "execution" ? <strong>{s.function_name}</strong> : s.name}
                {s.outlier && <span class="badge warn"> outlier</span>}
              </span>
              <span class="wf-track" role="cell">
                <span
                  class={`wf-bar ${s.kind}${failed ? " failed" : ""}`}
                  style={{ left: `${Math.min(left, 99.6)}%`, width: `${Math.min(width, 100 - Math.min(left, 99.6))}%` }}
                  title={`${s.name}: ${ms(s.duration_ms)} at +${ms(s.offset_ms)}`}
                />
                <span class="wf-label">{ms(s.duration_ms)}</span>
              </span>
            </div>
          );
        })}
      </div>
      {picked && <SpanFacts span={picked} />}
    </section>
  );
}

function SpanFacts({ span }) {
  const rows =
    span.kind === "execution"
      ? [
          ["function", span.function_name],
          ["trigger", span.trigger],
          ["status", `${span.status} (${span.status_code})`],
          ["request", `${span.method} ${span.path}`],
          ["start", span.cold_start ? "cold" : "warm"],
          ["outlier", span.outlier ? "yes: slower than twice the function's p95" : "no"],
        ]
      : [["status", span.status], ...Object.entries(span.attributes || {}).map(([k, v]) => [k, JSON.stringify(v)])];
  return (
    <div class="card" data-testid="span-facts">
      <h2>
        {span.kind === "execution"
          ? `Execution of ${span.function_name}`
          : span.kind === "sdk"
            ? `SDK call ${span.name}`
            : `Span ${span.name}`}
      </h2>
      <dl class="facts">
        {rows.map(([k, v]) => (
          <>
            <dt>{k}</dt>
            <dd>{String(v)}</dd>
          </>
        ))}
        <dt>span id</dt>
        <dd>
          <code>{span.span_id}</code>
        </dd>
        <dt>offset / duration</dt>
        <dd>
          +{ms(span.offset_ms)} / {ms(span.duration_ms)}
        </dd>
      </dl>
      {span.kind === "execution" && (
        <a href={`#/invocations/${span.execution_id}`}>Open the execution and its logs →</a>
      )}
    </div>
  );
}
