// Deployments (every row opens its build log; rollback; side-by-side diff of two versions) and the
// function's recent executions.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, query, subscribe } from "../api.js";
import {
  ago,
  ErrorBanner,
  Field,
  Loading,
  Notice,
  StatusBadge,
  Table,
  useAction,
  useAsync,
} from "../components/ui.jsx";
import { lazy } from "../components/lazy.jsx";
import { ExecutionTable } from "../components/execution-table.jsx";

// jsdiff and the diff table: their own chunk, fetched when a diff is first shown.
const SideBySide = lazy(() => import("../components/diffview.jsx"), "SideBySide", "diff view");

export function DeploymentsTab({ fn, reload }) {
  const list = useAsync(() => api.get(`functions/${fn.id}/deployments?limit=100`), [fn.id, fn.active_deployment_id]);
  const action = useAction();
  const [pair, setPair] = useState({ from: "", to: "" });
  const [diff, setDiff] = useState(null);
  const [shown, setShown] = useState(null); // the deployment whose build log is open

  const deployments = list.data ? list.data.deployments : [];
  const built = deployments.filter((d) => d.status === "succeeded" && d.code_hash);
  const activeHash = (deployments.find((d) => d.id === fn.active_deployment_id) || {}).code_hash;

  const rollback = (d) =>
    action.run(async () => {
      await api.post(`functions/${fn.id}/rollback`, { deployment_id: d.id });
      reload();
    });
  const compare = (e) => {
    e.preventDefault();
    action.run(async () => setDiff(await api.get(`functions/${fn.id}/diff${query(pair)}`)));
  };

  if (list.loading && !list.data) return <Loading />;
  return (
    <div>
      <ErrorBanner error={list.error || action.error} />
      <p class="muted">Click a version to read its build log.</p>
      <Table
        label="Deployments"
        rows={deployments}
        onRow={(d) => setShown(d.id)}
        selected={shown}
        empty="No deployments yet: write code in the Code tab and press Deploy."
        columns={[
          { title: "Version", render: (d) => `v${d.version}` },
          { title: "Status", render: (d) => <StatusBadge status={d.status} /> },
          { title: "Source", key: "source" },
          { title: "Hash", render: (d) => <code>{(d.code_hash || "").slice(0, 12)}</code> },
          { title: "Submitted", render: (d) => ago(d.submitted_at) },
          { title: "Build", render: (d) => (d.duration_ms === null ? "—" : `${d.duration_ms} ms`) },
          {
            title: "",
            render: (d) =>
              d.id === fn.active_deployment_id ? (
                <span class="badge active">active</span>
              ) : d.status === "succeeded" && d.code_hash !== activeHash ? (
                <button onClick={() => rollback(d)} disabled={action.busy} aria-label={`Roll back to v${d.version}`}>
                  Roll back
                </button>
              ) : null,
          },
        ]}
      />
      {shown && deployments.some((d) => d.id === shown) && (
        <DeploymentLog dep={deployments.find((d) => d.id === shown)} onClose={() => setShown(null)} />
      )}
      {built.length >= 2 && (
        <form class="form row" onSubmit={compare} aria-label="Compare versions">
          <VersionSelect label="From" name="from" versions={built} pair={pair} setPair={setPair} />
          <VersionSelect label="To" name="to" versions={built} pair={pair} setPair={setPair} />
          <button type="submit" disabled={!pair.from || !pair.to || action.busy}>
            Compare
          </button>
        </form>
      )}
      {diff && <SideBySide files={diff.files} />}
    </div>
  );
}

const RUNNING = ["queued", "building"];

// The stored log of a finished build (paged), or the live stream of one still running.
function useBuildLog(dep) {
  const [log, setLog] = useState({ lines: null, record: dep, error: null });
  useEffect(() => {
    let stopped = false;
    setLog({ lines: null, record: dep, error: null });
    if (RUNNING.includes(dep.status)) {
      let lines = [];
      const show = () => setLog((l) => ({ ...l, lines: [...lines] }));
      const end = (record) => {
        close();
        setLog((l) => ({ ...l, lines: [...lines], record }));
      };
      const close = subscribe(`deployments/${dep.id}/stream`, {
        open: () => (lines = []), // the stream replays from the start
        log: (l) => {
          lines.push(l.line);
          show();
        },
        succeeded: end,
        failed: end,
        superseded: end,
      });
      return () => close();
    }
    (async () => {
      try {
        const lines = [];
        let after = 0;
        for (;;) {
          const page = await api.get(`deployments/${dep.id}/logs${query({ after_seq: after, limit: 5000 })}`);
          lines.push(...page.lines.map((l) => l.line));
          if (page.next_after_seq === null || stopped) break;
          after = page.next_after_seq;
        }
        if (!stopped) setLog((l) => ({ ...l, lines }));
      } catch (error) {
        if (!stopped) setLog((l) => ({ ...l, error }));
      }
    })();
    return () => {
      stopped = true;
    };
  }, [dep.id, RUNNING.includes(dep.status)]);
  return log;
}

function DeploymentLog({ dep, onClose }) {
  const { lines, record, error } = useBuildLog(dep);
  const box = useRef(null);
  useEffect(() => {
    if (box.current) box.current.focus();
  }, [dep.id]);
  const empty =
    record.source === "rollback"
      ? `(no build: a rollback activates a version built earlier, ${(record.code_hash || "").slice(0, 12)})`
      : "(the build wrote no log lines)";
  return (
    <div class="build deployment-log" ref={box} tabIndex={-1} aria-label={`Build log of v${record.version}`}>
      <h3>
        Build log of v{record.version} <StatusBadge status={record.status} />
        <span class="muted">
          {" "}
          {record.source} · submitted {ago(record.submitted_at)}
        </span>{" "}
        <button class="link" onClick={onClose}>
          Close
        </button>
      </h3>
      {record.status === "failed" && (
        <Notice kind="error">The build failed: {record.error_message || "see the log"}</Notice>
      )}
      <ErrorBanner error={error} />
      <pre class="log" data-testid="deployment-log">
        {lines === null ? "loading the log…" : lines.length ? lines.join("\n") : empty}
      </pre>
    </div>
  );
}

function VersionSelect({ label, name, versions, pair, setPair }) {
  return (
    <Field label={label}>
      <select name={name} value={pair[name]} onChange={(e) => setPair({ ...pair, [name]: e.target.value })}>
        <option value="">choose…</option>
        {versions.map((d) => (
          <option key={d.id} value={d.id}>
            v{d.version}
          </option>
        ))}
      </select>
    </Field>
  );
}

export function ExecutionsTab({ fn }) {
  const list = useAsync(() => api.get(`executions${query({ function_id: fn.id, limit: 50 })}`), [fn.id]);
  if (list.loading && !list.data) return <Loading />;
  return (
    <div>
      <ErrorBanner error={list.error} />
      <ExecutionTable rows={list.data ? list.data.executions : []} />
      <button onClick={list.reload}>Refresh</button>
    </div>
  );
}
