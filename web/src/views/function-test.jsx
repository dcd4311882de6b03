// Test tab: send a request to /fn/<id>/<path> and show the answer, timing, cold start and its logs.
import { useState } from "preact/hooks";
import { api, ApiError, request } from "../api.js";
import { ErrorBanner, Field, useAction } from "../components.jsx";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
const LOG_DEADLINE_MS = 5000; // executions are written a few milliseconds after the response

function parseHeaders(text) {
  const headers = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf(":");
    if (at < 1) throw new ApiError(400, { error: { code: "VALIDATION", message: `not a header: ${line}`,
      hint: "write one header per line as Name: value" } });
    headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return headers;
}

async function executionLogs(id) {
  const end = Date.now() + LOG_DEADLINE_MS;
  for (;;) {
    try {
      return await api.get(`executions/${id}/logs`);
    } catch (e) {
      if (e.status !== 404 || Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export function TestTab({ fn }) {
  const [method, setMethod] = useState("POST");
  const [path, setPath] = useState("/");
  const [headers, setHeaders] = useState("Content-Type: application/json");
  const [body, setBody] = useState('{"name": "Orva"}');
  const [result, setResult] = useState(null);
  const { busy, error, run } = useAction();

  const send = (e) => {
    e.preventDefault();
    run(async () => {
      setResult(null);
      const sent = ["GET", "HEAD"].includes(method) ? undefined : body;
      const started = performance.now();
      const res = await request(method, `/fn/${encodeURIComponent(fn.name)}${path.startsWith("/") ? path : `/${path}`}`,
        sent, { raw: true, headers: parseHeaders(headers) });
      const text = await res.text();
      const elapsed = performance.now() - started;
      const answer = { status: res.status, headers: [...res.headers.entries()], body: text, elapsed,
        duration: res.headers.get("x-orva-duration-ms"), cold: res.headers.get("x-orva-cold-start"),
        execution: res.headers.get("x-orva-execution-id"), logs: null };
      setResult(answer);
      if (answer.execution) {
        const logs = await executionLogs(answer.execution);
        setResult({ ...answer, logs });
      }
    });
  };

  return (
    <div class="test-tab">
      <form class="form" onSubmit={send}>
        <div class="row">
          <Field label="Method">
            <select name="method" value={method} onChange={(e) => setMethod(e.target.value)}>
              {METHODS.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </Field>
          <Field label="Path">
            <input name="path" value={path} onInput={(e) => setPath(e.target.value)} />
          </Field>
        </div>
        <Field label="Headers" help="One per line, Name: value">
          <textarea name="headers" rows="3" value={headers} onInput={(e) => setHeaders(e.target.value)} />
        </Field>
        <Field label="Body">
          <textarea name="body" rows="5" value={body} onInput={(e) => setBody(e.target.value)} />
        </Field>
        <div class="actions left">
          <button class="primary" type="submit" disabled={busy}>
            Send
          </button>
        </div>
      </form>
      <ErrorBanner error={error} />
      {result && <Answer result={result} />}
    </div>
  );
}

function prettyBody(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function Answer({ result }) {
  const ok = result.status < 400;
  return (
    <div class="answer" aria-label="Response">
      <div class="stats small">
        <div class={`stat ${ok ? "good" : "bad"}`}>
          <div class="stat-value" data-testid="status">{result.status}</div>
          <div class="stat-label">Status</div>
        </div>
        <div class="stat">
          <div class="stat-value">{result.duration ?? "—"} ms</div>
          <div class="stat-label">Duration in orvad</div>
        </div>
        <div class="stat">
          <div class="stat-value">{result.elapsed.toFixed(0)} ms</div>
          <div class="stat-label">Round trip</div>
        </div>
        <div class="stat">
          <div class="stat-value" data-testid="cold-start">{result.cold === "true" ? "cold" : "warm"}</div>
          <div class="stat-label">Start</div>
        </div>
      </div>
      <h3>Body</h3>
      <pre class="log" data-testid="response-body">{prettyBody(result.body)}</pre>
      <details>
        <summary>Headers ({result.headers.length})</summary>
        <pre class="log">{result.headers.map(([k, v]) => `${k}: ${v}`).join("\n")}</pre>
      </details>
      <h3>Logs of this execution</h3>
      {result.execution ? (
        <pre class="log" data-testid="execution-logs">
          {result.logs === null ? "waiting for the execution record…" : result.logs.logs || "(nothing printed)"}
        </pre>
      ) : (
        <p class="muted">No execution was recorded for this answer.</p>
      )}
      {result.execution && (
        <p>
          <a href={`#/invocations/${result.execution}`}>Open execution {result.execution}</a>
        </p>
      )}
    </div>
  );
}
