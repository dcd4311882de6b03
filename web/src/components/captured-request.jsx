// An execution's captured request (GET /api/v1/executions/<id>/request: credentials redacted, the body up
// to 1 MiB) with Replay (POST .../replay: the function's current version, as you) and Save as a saved
// request of the function (its Test tab lists them). Shown on the execution's page (views/invocations.jsx).
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBanner, Field, useAsync } from "./ui.jsx";

function shownBody(r) {
  if (r.body_encoding !== "base64") return r.body;
  return `(${r.body_size} bytes of binary, base64)\n${r.body}`;
}

export function CapturedRequest({ id }) {
  const x = useAsync(
    () => api.get(`executions/${id}/request`, { quiet401: true }).catch((e) => ({ missing: e })),
    [id],
  );
  const [replayed, setReplayed] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [name, setName] = useState("");
  const [saved, setSaved] = useState(null);
  if (!x.data) return null;
  if (x.data.missing) {
    return (
      <>
        <h2>Request</h2>
        <p class="muted" data-testid="no-captured-request">
          {x.data.missing.status === 404
            ? "Its request was not kept: request capture is off for the function (its Settings), or the request was refused before it was read, or pruned."
            : x.data.missing.message}
        </p>
      </>
    );
  }
  const r = x.data;
  const replay = async () => {
    setBusy(true);
    setError(null);
    try {
      setReplayed(await api.post(`executions/${id}/replay`));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    const headers = Object.fromEntries(
      r.headers.filter(([k, v]) => v !== "[redacted]" && !["host", "content-length", "connection"].includes(k)),
    );
    try {
      const f = await api.post(`functions/${r.function_id}/fixtures`, {
        name: name.trim(),
        method: r.method,
        path: r.path,
        query: r.query
          .split("&")
          .filter((part) => part && !part.endsWith("=%5Bredacted%5D"))
          .join("&"),
        headers,
        body: r.body,
        body_encoding: r.body_encoding,
      });
      setSaved(f.name);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <h2>Request</h2>
      <pre class="log" data-testid="captured-request">
        {`${r.method} ${r.path}${r.query ? `?${r.query}` : ""}\n`}
        {r.headers.map(([k, v]) => `${k}: ${v}`).join("\n")}
        {"\n\n"}
        {shownBody(r)}
      </pre>
      {r.body_truncated && (
        <p class="muted">The body was {r.body_size} bytes: only its first 1 MiB was kept, so it cannot be replayed.</p>
      )}
      <div class="actions left">
        <button class="primary" onClick={replay} disabled={busy} data-testid="replay">
          Replay
        </button>
        <span class="muted">
          Runs this request again on the function's current version, as you (its credentials were not kept).
        </span>
      </div>
      <form class="form row" onSubmit={save} aria-label="Save as saved request">
        <Field label="Save as a saved request named">
          <input name="fixture_name" value={name} onInput={(e) => setName(e.target.value)} />
        </Field>
        <div class="actions left">
          <button type="submit" disabled={!name.trim()}>
            Save
          </button>
        </div>
      </form>
      {saved && (
        <p class="muted" role="status">
          Saved as {saved}: the function's Test tab lists it.
        </p>
      )}
      <ErrorBanner error={error} onClose={() => setError(null)} />
      {replayed && (
        <div data-testid="replayed">
          <p>
            Replayed: status {replayed.status},{" "}
            <a href={`#/invocations/${replayed.execution_id}`}>execution {replayed.execution_id}</a>
          </p>
          <pre class="log" data-testid="replay-body">
            {replayed.body_encoding === "base64" ? `(base64) ${replayed.body}` : replayed.body}
          </pre>
        </div>
      )}
    </>
  );
}
