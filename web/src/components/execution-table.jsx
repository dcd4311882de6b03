// The executions table: a function's recent executions (function page) and every function's (Invocations
// view, with a Function column). A row opens the execution.
import { navigate } from "../router.js";
import { ago, StatusBadge, Table } from "./ui.jsx";

export function ExecutionTable({ rows, showFunction = false, names = {} }) {
  const columns = [
    { title: "Started", render: (x) => ago(x.started_at) },
    { title: "Status", render: (x) => <StatusBadge status={x.status} /> },
    { title: "Code", key: "status_code" },
    { title: "Method", key: "method" },
    { title: "Path", render: (x) => <code>{x.path}</code> },
    {
      title: "Duration",
      render: (x) =>
        x.outlier ? (
          <span title="slower than twice the function's rolling p95">
            {x.duration_ms} ms <span class="badge warn">outlier</span>
          </span>
        ) : (
          `${x.duration_ms} ms`
        ),
    },
    { title: "Start", render: (x) => (x.cold_start ? "cold" : "warm") },
  ];
  if (showFunction) columns.splice(1, 0, { title: "Function", render: (x) => names[x.function_id] || x.function_id });
  return (
    <Table
      label="Executions"
      rows={rows}
      columns={columns}
      empty="No invocations yet."
      onRow={(x) => navigate(`/invocations/${x.id}`)}
    />
  );
}
