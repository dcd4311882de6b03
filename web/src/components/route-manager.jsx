// Routes pointing at functions, and a form to add one: used by the function page (one function) and the
// Routes view (all of them).
import { useState } from "preact/hooks";
import { api, functionsBase, query } from "../api.js";
import { ago, ConfirmButton, ErrorBanner, Field, Loading, Table, useAction, useAsync } from "./ui.jsx";

export function RouteManager({ functionId, functions }) {
  const list = useAsync(() => api.get(`routes${query({ function_id: functionId })}`), [functionId]);
  const [form, setForm] = useState({ path: "", methods: "*", function_id: functionId || "" });
  const action = useAction();
  const add = (e) => {
    e.preventDefault();
    action.run(async () => {
      await api.post("routes", form);
      setForm({ ...form, path: "" });
      list.reload();
    });
  };
  const remove = (path) =>
    action.run(async () => {
      await api.del(`routes${query({ path })}`);
      list.reload();
    });
  if (list.loading && !list.data) return <Loading />;
  return (
    <div>
      <ErrorBanner error={list.error || action.error} />
      <Table
        label="Routes"
        rows={list.data.routes}
        empty="No custom routes."
        columns={[
          {
            title: "Path",
            render: (r) => (
              <a href={functionsBase() + r.path.replace(/\/\*$/, "/")} target="_blank" rel="noopener noreferrer">
                <code>{r.path}</code>
              </a>
            ),
          },
          { title: "Methods", key: "methods" },
          ...(functionId
            ? []
            : [{ title: "Function", render: (r) => <a href={`#/functions/${r.function_id}`}>{r.function_name}</a> }]),
          { title: "Created", render: (r) => ago(r.created_at) },
          {
            title: "",
            render: (r) => (
              <ConfirmButton label="Delete" question={`Delete route ${r.path}?`} onConfirm={() => remove(r.path)} />
            ),
          },
        ]}
      />
      <form class="form row" onSubmit={add} aria-label="Add a route">
        <Field label="Path" help="/exact or /prefix/*">
          <input
            name="route_path"
            value={form.path}
            required
            placeholder="/hooks/*"
            onInput={(e) => setForm({ ...form, path: e.target.value })}
          />
        </Field>
        <Field label="Methods" help="* or GET,POST">
          <input
            name="route_methods"
            value={form.methods}
            onInput={(e) => setForm({ ...form, methods: e.target.value })}
          />
        </Field>
        {!functionId && (
          <Field label="Function">
            <select
              name="route_function"
              value={form.function_id}
              required
              onChange={(e) => setForm({ ...form, function_id: e.target.value })}
            >
              <option value="">choose…</option>
              {(functions || []).map((f) => (
                <option key={f.id} value={f.id}>
                  {f.name}
                </option>
              ))}
            </select>
          </Field>
        )}
        <button type="submit" disabled={action.busy}>
          Add route
        </button>
      </form>
    </div>
  );
}
