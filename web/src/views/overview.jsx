// Live figures: the last 10 minutes from metrics/history, then the `metrics` events of /api/v1/events
// every few seconds appended to them.
import { useEffect, useState } from "preact/hooks";
import { api, subscribe } from "../api.js";
import { Chart } from "../components/chart.jsx";
import { bytes, ErrorBanner, Loading, Notice, Table } from "../components/ui.jsx";

const WINDOW_S = 600; // the charts show ten minutes

function pct(x) {
  return `${(100 * (x || 0)).toFixed(1)} %`;
}

function ms(x) {
  return x === null || x === undefined ? "—" : `${x.toFixed(1)} ms`;
}

// Points oldest first, within the window that ends at the newest one.
function keepWindow(points) {
  if (points.length === 0) return points;
  const from = points[points.length - 1].t - WINDOW_S;
  return points.filter((p) => p.t >= from);
}

const LATENCY_SERIES = [{ label: "p50" }, { label: "p95" }, { label: "p99" }];
const LATENCY_AXES = [{ scale: "ms", label: "ms" }];
const RATE_SERIES = [
  { label: "req/s", scale: "rate" },
  { label: "error %", scale: "pct" },
];
const RATE_AXES = [
  { scale: "rate", label: "req/s" },
  { scale: "pct", label: "error %", side: 1 },
];

export function OverviewView() {
  const [snap, setSnap] = useState(null);
  const [history, setHistory] = useState([]);
  const [error, setError] = useState(null);

  useEffect(() => {
    let live = [];
    let loaded = false;
    // a live point is stamped with this browser's clock, never before the last point kept
    const stamp = (h, m) => ({ ...m, t: Math.max(Date.now() / 1000, h.length ? h[h.length - 1].t + 0.001 : 0) });
    const add = (m) => {
      setSnap(m);
      if (!loaded)
        live.push(m); // kept until the history is in, then appended to it
      else setHistory((h) => keepWindow([...h, stamp(h, m)]));
    };
    api.get("system/metrics.json").then(setSnap, setError);
    api.get(`system/metrics/history?minutes=${WINDOW_S / 60}`).then(({ points }) => {
      loaded = true;
      let h = [...points];
      for (const m of live) h = [...h, stamp(h, m)];
      live = [];
      setHistory(keepWindow(h));
    }, setError);
    return subscribe("events?types=metrics", { metrics: add });
  }, []);

  if (error) return <ErrorBanner error={error} />;
  if (!snap) return <Loading />;
  const xs = history.map((p) => p.t);
  const now = xs.length ? xs[xs.length - 1] : Date.now() / 1000;
  const latency = [xs, ...["p50", "p95", "p99"].map((k) => history.map((p) => p.latency_ms[k]))];
  const rate = [xs, history.map((p) => p.rate_per_s), history.map((p) => 100 * p.error_rate)];
  const quiet = history.every((p) => !p.rate_per_s) ? "No invocations in the last 10 minutes" : null;
  const builds = snap.builds || { queued: 0, running: 0 };

  return (
    <section>
      <h1>Overview</h1>
      {snap.invocations_total === 0 && snap.pools.length === 0 && (
        <Notice kind="info">
          <p class="sentence">
            New here? <a href="#/functions">Create your first function</a>: write a handler, press Deploy, then try it
            in the Test tab.
          </p>
        </Notice>
      )}
      <div class="stats">
        <Stat label="Invocations / s" value={snap.rate_per_s.toFixed(2)} />
        <Stat label="Error rate" value={pct(snap.error_rate)} />
        <Stat
          wide
          label="Latency p50 / p95 / p99"
          value={`${ms(snap.latency_ms.p50)} / ${ms(snap.latency_ms.p95)} / ${ms(snap.latency_ms.p99)}`}
        />
        <Stat label="Cold starts" value={pct(snap.cold_start_share)} />
        <Stat label="Invocations (total)" value={snap.invocations_total} />
        <Stat label="Builds running / queued" value={`${builds.running} / ${builds.queued}`} />
        <Stat label="Memory reserved by workers" value={bytes(snap.memory_reserved_bytes)} />
        <Stat label="Spare jails waiting / cold starts served" value={spares(snap.spare_jails)} />
      </div>
      <div class="charts">
        <Chart
          title="Latency"
          testid="chart-latency"
          series={LATENCY_SERIES}
          axes={LATENCY_AXES}
          data={latency}
          now={now}
          window_s={WINDOW_S}
          empty={quiet}
        />
        <Chart
          title="Invocations and errors"
          testid="chart-rate"
          series={RATE_SERIES}
          axes={RATE_AXES}
          data={rate}
          now={now}
          window_s={WINDOW_S}
          empty={quiet}
        />
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
      <p class="muted">
        Figures cover the last minute and refresh every 5 seconds; the charts show the last 10 minutes.
      </p>
    </section>
  );
}

// spare jails: jails started ahead and handed a function at its cold start (ORVA_SPARE_JAILS, docs/PERFORMANCE.md)
function spares(s) {
  if (!s || !s.enabled) return "off";
  return `${s.waiting} / ${Object.values(s.used).reduce((a, b) => a + b, 0)}`;
}

function Stat({ label, value, wide }) {
  return (
    <div class={wide ? "stat wide" : "stat"}>
      <div class="stat-value">{value}</div>
      <div class="stat-label">{label}</div>
    </div>
  );
}
