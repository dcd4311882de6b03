// Cluster (issue 25): the node registry. /cluster lists every orvad sharing this database, each alive, gone (its
// heartbeat stopped: three missed and a slack) or left (stopped cleanly), with its address, version, warm
// workers and load as of its last heartbeat. The list is read again every few seconds. On SQLite it is this node.
import { useEffect } from "preact/hooks";
import { api, query } from "../api.js";
import { ErrorBanner, Field, Loading, Table, ago, useAsync } from "../components/ui.jsx";
import { navigate } from "../router.js";

const STATUSES = ["alive", "gone", "left"];
const STATUS_HELP = {
  alive: "heartbeating",
  gone: "no heartbeat for three heartbeats and the slack: its leases may be taken",
  left: "stopped cleanly",
};
const REFRESH_MS = 3000;

function badge(status) {
  const look = { alive: "success", gone: "error", left: "inactive" };
  return (
    <span class={`badge ${look[status] || status}`} title={STATUS_HELP[status] || ""} data-status={status}>
      {status}
    </span>
  );
}

function warm(pools) {
  const entries = Object.values(pools || {});
  const workers = entries.reduce((n, p) => n + (p.workers || 0), 0);
  if (!workers) return "none";
  const names = entries.map((p) => `${p.name} (${p.workers})`).join(", ");
  return <span title={names}>{`${workers} in ${entries.length} function${entries.length === 1 ? "" : "s"}`}</span>;
}

function load(l) {
  if (!l || l.loadavg_1m === undefined) return "—";
  return `${l.loadavg_1m} / ${l.cpus} CPUs · ${l.invocations ?? 0} running`;
}

export function ClusterView({ query: q }) {
  const status = q.status || "";
  const nodes = useAsync(() => api.get(`cluster/nodes${query({ status, limit: 500 })}`), [status]);
  useEffect(() => {
    const timer = setInterval(() => nodes.reload(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [nodes.reload]);
  const body = nodes.data;
  const columns = [
    {
      title: "Node",
      render: (n) => (n.this_node ? <strong title="the node that answered">{n.id} (this node)</strong> : n.id),
    },
    { title: "Status", render: (n) => badge(n.status) },
    { title: "Address", render: (n) => <code>{n.address}</code> },
    { title: "Version", key: "version" },
    { title: "Warm workers", render: (n) => warm(n.pools) },
    { title: "Load", render: (n) => load(n.load) },
    { title: "Last seen", render: (n) => <span title={n.last_seen_at}>{`${n.seen_s_ago.toFixed(1)} s ago`}</span> },
    { title: "Started", render: (n) => <span title={n.started_at}>{ago(n.started_at)}</span> },
  ];
  return (
    <section>
      <header class="page-head">
        <h1>Cluster</h1>
      </header>
      <p class="muted">
        Every orvad sharing this database writes a heartbeat
        {body ? ` every ${body.heartbeat_s} s` : ""}; one silent for
        {body ? ` ${body.gone_after_s} s` : " three heartbeats and a slack"} is gone, one stopped cleanly has left. With
        the embedded SQLite database the cluster is this one node.
      </p>
      {body && (
        <p data-testid="cluster-counts">
          {STATUSES.map((s) => (
            <span key={s} class="row-gap">
              {badge(s)} {body.counts[s]}{" "}
            </span>
          ))}
        </p>
      )}
      <div class="form row" role="search">
        <Field label="Status">
          <select
            name="status"
            value={status}
            onChange={(e) => navigate(`/cluster${query({ status: e.target.value })}`)}
          >
            <option value="">any status</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <ErrorBanner error={nodes.error} />
      {!body ? (
        nodes.error ? null : (
          <Loading />
        )
      ) : (
        <Table label="Nodes" rows={body.nodes} columns={columns} empty={`No ${status || ""} nodes.`} />
      )}
    </section>
  );
}
