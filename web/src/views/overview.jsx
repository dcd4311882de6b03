// Live figures: metrics.json once, then the `metrics` events of /api/v1/events every few seconds.
import { useEffect, useState } from "preact/hooks";
import { api, subscribe } from "../api.js";
import { Chart } from "../chart.jsx";
import { bytes, ErrorBanner, Loading, Notice, Table } from "../components.jsx";

const KEEP_POINTS = 120; // ten minutes at one point per 5 s

function pct(x) {
  return `${(100 * (x || 0)).toFixed(1)} %`;
}

function ms(x) {
  return x === null || x === undefined ? "—" : `${x.toFixed(1)} ms`;
}

export function OverviewView() {
  const [snap, setSnap] = useState(null);
  const [history, setHistory] = useState([]);
  const [error, setError] = useState(null);

  useEffect(() => {
    const add = (m) => {
      setSnap(m);
      setHistory((h) => [...h.slice(-KEEP_POINTS + 1), { t: Date.now() / 1000, ...m }]);
    };
    api.get("system/metrics.json").then(add, setError);
    return subscribe("events?types=metrics", { metrics: add });
  }, []);

  if (error) return <ErrorBanner error={error} />;
  if (!snap) return <Loading />;
  const xs = history.map((p) => p.t);
  const latency = [xs, ...["p50", "p95", "p99"].map((k) => history.map((p) => p.latency_ms[k]))];
  const rate = [xs, history.map((p) => p.rate_per_s), history.map((p) => 100 * p.error_rate)];
  const builds = snap.builds || { queued: 0, running: 0 };

  return (
    <section>
      <h1>Overview</h1>
      {snap.invocations_total === 0 && snap.pools.length === 0 && (
        <Notice kind="info">
          New here? <a href="#/functions">Create your first function</a>: write a handler, press Deploy, then
          try it in the Test tab.
        </Notice>
      )}
      <div class="stats">
        <Stat label="Invocations / s" value={snap.rate_per_s.toFixed(2)} />
        <Stat label="Error rate" value={pct(snap.error_rate)} />
        <Stat label="Latency p50 / p95 / p99"
          value={`${ms(snap.latency_ms.p50)} / ${ms(snap.latency_ms.p95)} / ${ms(snap.latency_ms.p99)}`} />
        <Stat label="Cold starts" value={pct(snap.cold_start_share)} />
        <Stat label="Invocations (total)" value={snap.invocations_total} />
        <Stat label="Builds running / queued" value={`${builds.running} / ${builds.queued}`} />
        <Stat label="Memory reserved by workers" value={bytes(snap.memory_reserved_bytes)} />
      </div>
      <div class="charts">
        <Chart title="Latency (ms)" series={["p50", "p95", "p99"]} data={latency} />
        <Chart title="Invocations / s and error %" series={["req/s", "error %"]} data={rate} />
      </div>
      <h2>Warm pools</h2>
      <Table
        label="Warm pools"
        rows={snap.pools}
        rowKey={(p) => p.function_id}
        empty="No warm workers: a pool starts on a function's first invocation."
        columns={[
          { title: "Function", render: (p) => <a href={`#/functions/${p.function_id}`}>{p.function}</a> },
          { title: "Workers", key: "workers" },
          { title: "Idle", key: "idle" },
          { title: "Busy", key: "busy" },
          { title: "Queue", key: "queue_depth" },
          { title: "Cold starts", key: "cold_starts" },
        ]}
      />
      <p class="muted">Figures cover the last minute and refresh every 5 seconds.</p>
    </section>
  );
}

function Stat({ label, value }) {
  return (
    <div class="stat">
      <div class="stat-value">{value}</div>
      <div class="stat-label">{label}</div>
    </div>
  );
}
