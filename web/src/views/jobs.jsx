// Jobs (issue 23): durable background invocations. /jobs lists them newest first, filtered by function and
// status ("Dead letters" is the dead list: every attempt failed); /jobs/<id> shows one job, its attempts
// (each an execution, linked to its logs), and Retry / Cancel.
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

const STATUSES = ["pending", "running", "failed", "succeeded", "dead", "cancelled"];
const STATUS_HELP = {
  pending: "waiting for its time",
  running: "an attempt is running",
  failed: "an attempt failed; the next one waits its back-off",
  succeeded: "an attempt answered below 500",
  dead: "every attempt failed (a dead letter)",
  cancelled: "cancelled: no further attempt",
};

function badge(status) {
  const look = { succeeded: "success", dead: "error", failed: "timeout", running: "building", pending: "queued" };
  return (
    <span class={`badge ${look[status] || status}`} title={STATUS_HELP[status] || ""} data-status={status}>
      {status}
    </span>
  );
}

export function JobsView({ params, query: q }) {
  if (params.id) return <JobDetail id={params.id} />;
  const filters = { function_id: q.function_id || "", status: q.status || "" };
  const functions = useAsync(() => allPages("functions", "functions"), []);
  const list = usePaged(
    (cursor) => `jobs${query({ function_id: filters.function_id, status: filters.status, limit: 50, cursor })}`,
    "jobs",
    [filters.function_id, filters.status],
  );
  const setFilter = (k) => (e) => navigate(`/jobs${query({ ...filters, [k]: e.target.value })}`);
  const columns = [
    { title: "Created", render: (j) => ago(j.created_at) },
    { title: "Function", key: "function_name" },
    { title: "Status", render: (j) => badge(j.status) },
    { title: "Attempts", render: (j) => `${j.attempts} / ${j.max_attempts}` },
    { title: "Runs at", render: (j) => (j.status === "pending" || j.status === "failed" ? ago(j.run_at) : "—") },
    { title: "Trigger", key: "trigger" },
    { title: "Job", render: (j) => <code>{j.id.slice(0, 16)}…</code> },
  ];
  const dead = filters.status === "dead";
  return (
    <section>
      <header class="page-head">
        <h1>{dead ? "Dead letters" : "Jobs"}</h1>
        <div class="row">
          <a href={`#/jobs${query({ ...filters, status: dead ? "" : "dead" })}`} data-testid="dead-letters">
            {dead ? "All jobs" : "Dead letters"}
          </a>
        </div>
      </header>
      <p class="muted">
        Background invocations: queued by <code>POST /api/v1/jobs</code>, by handlers with{" "}
        <code>orva.jobs.enqueue</code>, by <code>X-Orva-Invocation-Type: Event</code> calls and by cron. A failed
        attempt is retried after a back-off; after its last attempt a job is dead.
      </p>
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
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
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
          label="Jobs"
          rows={list.items || []}
          columns={columns}
          empty={dead ? "No dead letters: every job so far succeeded or is still trying." : "No jobs yet."}
          onRow={(j) => navigate(`/jobs/${j.id}`)}
        />
      )}
      <LoadMore paged={list} />
    </section>
  );
}

function JobDetail({ id }) {
  const [version, setVersion] = useState(0);
  const job = useAsync(() => api.get(`jobs/${id}`), [id, version]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const act = async (what) => {
    if (what === "cancel" && !window.confirm("Cancel this job? No further attempt will run.")) return;
    setBusy(true);
    setError(null);
    try {
      if (what === "cancel") await api.del(`jobs/${id}`);
      else await api.post(`jobs/${id}/retry`);
      setVersion((v) => v + 1);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  if (job.error) return <ErrorBanner error={job.error} />;
  if (!job.data) return <Loading />;
  const j = job.data;
  const canCancel = ["pending", "failed", "running"].includes(j.status);
  const canRetry = ["dead", "failed", "cancelled"].includes(j.status) && !j.lease_until;
  const attempts = j.attempts_list || [];
  const columns = [
    { title: "#", key: "attempt" },
    { title: "Outcome", render: (a) => <StatusBadge status={a.outcome === "succeeded" ? "success" : a.outcome} /> },
    { title: "Status", render: (a) => a.status_code ?? "—" },
    { title: "Error", render: (a) => (a.error ? `${a.error.code}: ${a.error.message}` : "") },
    { title: "Started", render: (a) => ago(a.started_at) },
    {
      title: "Execution",
      render: (a) =>
        a.execution_id ? (
          <a href={`#/invocations/${a.execution_id}`} onClick={(e) => e.stopPropagation()}>
            {a.execution_id.slice(0, 13)}… logs →
          </a>
        ) : (
          "none"
        ),
    },
  ];
  return (
    <section>
      <a href="#/jobs" class="muted">
        ← Jobs
      </a>
      <h1>
        Job of {j.function_name} {badge(j.status)}
      </h1>
      <p class="muted">
        <code>{j.id}</code> · {j.trigger} · queued by {j.source} · {ago(j.created_at)}
      </p>
      <div class="row">
        <button type="button" disabled={busy || !canRetry} onClick={() => act("retry")}>
          Retry
        </button>
        <button type="button" class="danger" disabled={busy || !canCancel} onClick={() => act("cancel")}>
          Cancel
        </button>
      </div>
      <ErrorBanner error={error} onClose={() => setError(null)} />
      <div class="card">
        <dl class="facts">
          <dt>status</dt>
          <dd>
            {j.status}: {STATUS_HELP[j.status]}
          </dd>
          <dt>attempts</dt>
          <dd>
            {j.attempts} of {j.max_attempts} (this round; {j.tries} in all)
          </dd>
          <dt>{j.status === "pending" || j.status === "failed" ? "next attempt" : "run at"}</dt>
          <dd>{j.run_at}</dd>
          {j.idempotency_key && (
            <>
              <dt>idempotency key</dt>
              <dd>
                <code>{j.idempotency_key}</code> until {j.idempotency_expires_at}
              </dd>
            </>
          )}
          {j.last_error && (
            <>
              <dt>last error</dt>
              <dd data-testid="last-error">
                {j.last_error.code}: {j.last_error.message}
              </dd>
            </>
          )}
          {j.finished_at && (
            <>
              <dt>finished</dt>
              <dd>{j.finished_at}</dd>
            </>
          )}
        </dl>
      </div>
      <h2>Attempts</h2>
      <Table
        label="Attempts"
        rows={attempts}
        columns={columns}
        rowKey={(a) => String(a.attempt)}
        empty="No attempt yet."
      />
    </section>
  );
}
