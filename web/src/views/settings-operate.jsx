// Settings → Storage and Settings → Sessions (issue 24). Storage: what orvad keeps on disk (the database, its
// WAL and free space, rows and bytes per table, version trees, build cache) and a Vacuum button. Sessions: the
// dashboard's logins of this user (device, IP, created, last seen), each with Log out, and Log out everywhere.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import {
  ago,
  bytes,
  ConfirmButton,
  ErrorBanner,
  Loading,
  Notice,
  Table,
  useAction,
  useAsync,
} from "../components/ui.jsx";

function vacuumSummary(run) {
  if (run.running) return `A ${run.mode} vacuum is running (since ${ago(run.started_at)}).`;
  if (run.error) return `The ${run.mode} vacuum ${ago(run.started_at)} failed: ${run.error}`;
  return (
    `${run.mode === "full" ? "Full" : "Incremental"} vacuum ${ago(run.started_at)}: ${bytes(run.reclaimed_bytes)} ` +
    `given back in ${Math.round(run.duration_ms)} ms; writes waited at most ${Math.round(run.longest_lock_ms)} ms.`
  );
}

export function StorageCard() {
  const report = useAsync(() => api.get("system/storage"), []);
  const action = useAction();
  const [full, setFull] = useState(false);
  const vacuum = () =>
    action.run(async () => {
      await api.post(`system/vacuum${full ? "?mode=full" : ""}`);
      report.reload();
    });
  const r = report.data;
  const postgres = r && r.database.driver === "postgresql"; // no file, WAL or vacuum of orvad's on a cluster
  return (
    <section aria-label="Storage">
      <h2>Storage</h2>
      <p class="muted">
        What orvad keeps on disk. Vacuuming gives the database's free pages back to the disk; invocations go on
        meanwhile. A full vacuum rebuilds the whole file and holds other writes until it ends.
      </p>
      <ErrorBanner error={report.error || action.error} />
      {!r ? (
        <Loading />
      ) : (
        <>
          <dl class="facts" data-testid="storage">
            <dt>Database</dt>
            {postgres ? (
              <dd>
                PostgreSQL <code>{r.database.path}</code>, <span data-testid="db-bytes">{bytes(r.database.bytes)}</span>
              </dd>
            ) : (
              <dd>
                <code>{r.database.path}</code>, <span data-testid="db-bytes">{bytes(r.database.bytes)}</span>{" "}
                (write-ahead log {bytes(r.database.wal_bytes)})
              </dd>
            )}
            {!postgres && <dt>Free in the file</dt>}
            {!postgres && (
              <dd data-testid="free-bytes">
                {bytes(r.database.free_bytes)} ({r.database.free_pages} pages)
              </dd>
            )}
            <dt>Executions</dt>
            <dd data-testid="executions">
              {r.executions.rows} rows, {bytes(r.executions.bytes)}; logs {r.logs.rows} rows, {bytes(r.logs.bytes)}
            </dd>
            <dt>Function versions</dt>
            <dd>{bytes(r.versions_bytes)}</dd>
            <dt>Build cache</dt>
            <dd>{bytes(r.build_cache_bytes)}</dd>
            {!postgres && <dt>Last vacuum</dt>}
            {!postgres && (
              <dd data-testid="last-vacuum">{r.vacuum ? vacuumSummary(r.vacuum) : "None since orvad started."}</dd>
            )}
          </dl>
          <details>
            <summary>Tables</summary>
            <Table
              label="Tables"
              rows={r.database.tables}
              rowKey={(t) => t.name}
              columns={[
                { title: "Table", key: "name" },
                { title: "Rows", key: "rows" },
                { title: "Size", render: (t) => (t.bytes === null ? "—" : bytes(t.bytes)) },
              ]}
            />
          </details>
          {postgres ? (
            <Notice>
              <span data-testid="vacuum-postgresql">
                PostgreSQL vacuums its own tables (autovacuum, run by the database server): there is no file of orvad's
                to vacuum.
              </span>
            </Notice>
          ) : (
            <div class="actions left">
              <label class="check">
                <input type="checkbox" name="full" checked={full} onChange={(e) => setFull(e.target.checked)} /> Full
                (rebuild the file)
              </label>
              <button class="primary" onClick={vacuum} disabled={action.busy || (r.vacuum && r.vacuum.running)}>
                {action.busy ? "Vacuuming…" : "Vacuum"}
              </button>
            </div>
          )}
        </>
      )}
    </section>
  );
}

export function SessionsCard() {
  const list = useAsync(async () => (await api.get("auth/sessions")).sessions, []);
  const action = useAction();
  const [done, setDone] = useState(null);
  const end = (s) =>
    action.run(async () => {
      await api.del(`auth/sessions/${encodeURIComponent(s.id)}`);
      setDone(`Logged out ${s.device}.`);
      if (s.current) window.location.reload();
      else list.reload();
    });
  const endOthers = () =>
    action.run(async () => {
      const answer = await api.del("auth/sessions?keep_current=true");
      setDone(`Logged out ${answer.revoked} other session(s).`);
      list.reload();
    });
  const endAll = () =>
    action.run(async () => {
      await api.del("auth/sessions");
      window.location.reload();
    });
  return (
    <section aria-label="Sessions">
      <h2>Sessions</h2>
      <p class="muted">
        Where you are logged in to this dashboard. Logging a session out takes effect on its next request.
      </p>
      <ErrorBanner error={list.error || action.error} />
      {done && <Notice kind="ok">{done}</Notice>}
      {!list.data ? (
        <Loading />
      ) : (
        <Table
          label="Sessions"
          rows={list.data}
          columns={[
            {
              title: "Device",
              render: (s) => (
                <span title={s.user_agent || ""}>
                  {s.device}{" "}
                  {s.current && (
                    <span class="badge success" data-testid="current-session">
                      this browser
                    </span>
                  )}
                </span>
              ),
            },
            { title: "IP", render: (s) => s.ip || "—" },
            { title: "Logged in", render: (s) => ago(s.created_at) },
            { title: "Last seen", render: (s) => ago(s.last_seen_at) },
            {
              title: "",
              render: (s) => (
                <ConfirmButton
                  label="Log out"
                  question={s.current ? "Log out this browser?" : `Log out ${s.device} (${s.ip || "unknown address"})?`}
                  onConfirm={() => end(s)}
                />
              ),
            },
          ]}
        />
      )}
      <div class="actions left">
        <ConfirmButton
          label="Log out other sessions"
          class=""
          question="Log out every other session of yours? This browser stays logged in."
          onConfirm={endOthers}
        />
        <ConfirmButton
          label="Log out everywhere"
          question="Log out every session of yours, this browser too?"
          onConfirm={endAll}
        />
      </div>
    </section>
  );
}
