// The Test tab: the function's saved test requests (fixtures: load one into the panel, save the panel's
// request as one, delete one) above the test panel (components/test-panel.jsx; the Code tab shows it beside
// the editor). The same fixtures are `orva fixtures` and /api/v1/functions/<id>/fixtures.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { TestPanel } from "../components/test-panel.jsx";
import { ConfirmButton, ErrorBanner, Field, Loading, useAsync } from "../components/ui.jsx";

// a fixture as the panel's request: the path with its ?query, headers one per line, the body as text
export function fixtureAsTest(f) {
  let body = f.body;
  if (f.body_encoding === "base64") {
    try {
      body = atob(f.body);
    } catch {
      body = "";
    }
  }
  return {
    method: f.method,
    path: f.path + (f.query ? `?${f.query}` : ""),
    headers: Object.entries(f.headers || {})
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n"),
    body,
  };
}

function headersOf(text) {
  const headers = {};
  for (const line of (text || "").split("\n")) {
    const at = line.indexOf(":");
    if (at > 0) headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return headers;
}

// the panel's request as a fixture's fields
function testAsFixture(test) {
  const [path, ...rest] = (test.path || "/").split("?");
  return {
    method: test.method,
    path: path.startsWith("/") ? path : `/${path}`,
    query: rest.join("?"),
    headers: headersOf(test.headers),
    body: ["GET", "HEAD"].includes(test.method) ? "" : test.body || "",
  };
}

function Fixtures({ fn, ws }) {
  const [version, setVersion] = useState(0);
  const list = useAsync(() => api.get(`functions/${fn.id}/fixtures`), [fn.id, version]);
  const [name, setName] = useState("");
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(null);
  const items = list.data ? list.data.fixtures : null;
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    setSaved(null);
    const fields = { name: name.trim(), ...testAsFixture(ws.state.test) };
    try {
      const existing = (items || []).find((f) => f.name === fields.name);
      if (existing) await api.put(`functions/${fn.id}/fixtures/${existing.id}`, fields);
      else await api.post(`functions/${fn.id}/fixtures`, fields);
      setSaved(fields.name);
      setVersion((v) => v + 1);
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (f) => {
    setError(null);
    try {
      await api.del(`functions/${fn.id}/fixtures/${f.id}`);
      setVersion((v) => v + 1);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section class="fixtures" aria-label="Saved requests">
      <h3>Saved requests</h3>
      {list.error && <ErrorBanner error={list.error} />}
      {!items && !list.error && <Loading />}
      {items && items.length === 0 && (
        <p class="muted" data-testid="no-fixtures">
          None yet: write a request below and save it under a name.
        </p>
      )}
      {items && items.length > 0 && (
        <ul class="fixture-list" data-testid="fixtures">
          {items.map((f) => (
            <li key={f.id} data-testid="fixture">
              <button
                type="button"
                class="link"
                title={f.description || "Load into the request below"}
                onClick={() => ws.setTest(fixtureAsTest(f))}
              >
                {f.name}
              </button>{" "}
              <span class="muted">
                {f.method} {f.path}
                {f.query ? `?${f.query}` : ""}
              </span>{" "}
              <ConfirmButton
                label="Delete"
                question={`Delete the saved request ${f.name}?`}
                onConfirm={() => remove(f)}
              />
            </li>
          ))}
        </ul>
      )}
      <form class="form row" onSubmit={save} aria-label="Save request">
        <Field label="Save the request below as">
          <input name="fixture_name" value={name} placeholder="happy path" onInput={(e) => setName(e.target.value)} />
        </Field>
        <div class="actions left">
          <button type="submit" disabled={!name.trim()}>
            Save request
          </button>
        </div>
      </form>
      {saved && (
        <p class="muted" role="status" data-testid="fixture-saved">
          Saved as {saved}.
        </p>
      )}
      <ErrorBanner error={error} onClose={() => setError(null)} />
    </section>
  );
}

export function TestTab({ fn, ws }) {
  return (
    <div>
      <Fixtures fn={fn} ws={ws} />
      <TestPanel fn={fn} ws={ws} />
    </div>
  );
}
