// Test: send a request to /fn/<name>/<path> and show the answer, timing, cold start and its logs. The
// same panel sits on the Code tab (beside or under the editor) and on the Test tab; both show the
// page's one Test request (function-workspace), so it survives tab switches.
import { ErrorBanner, Field, Notice } from "./ui.jsx";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
// how the shortcut keys are written on this platform
export const MOD = /Mac|iPhone|iPad/.test(navigator.platform || "") ? "⌘" : "Ctrl";

export function TestPanel({ fn, ws }) {
  const { test, result, testBusy, testError } = ws.state;
  const send = (e) => {
    e.preventDefault();
    ws.send();
  };
  return (
    <div class="test-tab">
      {!fn.active_deployment_id && (!result || !result.refusal) && (
        <p class="muted" data-testid="not-deployed-yet">
          Nothing is deployed yet: press Deploy on the Code tab first, then send a request here.
        </p>
      )}
      <form class="form" onSubmit={send} aria-label="Test request">
        <div class="row">
          <Field label="Method">
            <select name="method" value={test.method} onChange={(e) => ws.setTest({ method: e.target.value })}>
              {METHODS.map((m) => (
                <option key={m}>{m}</option>
              ))}
            </select>
          </Field>
          <Field label="Path">
            <input name="path" value={test.path} onInput={(e) => ws.setTest({ path: e.target.value })} />
          </Field>
        </div>
        <Field label="Headers" help="One per line, Name: value">
          <textarea
            name="headers"
            rows="3"
            value={test.headers}
            onInput={(e) => ws.setTest({ headers: e.target.value })}
          />
        </Field>
        <Field label="Body">
          <textarea name="body" rows="5" value={test.body} onInput={(e) => ws.setTest({ body: e.target.value })} />
        </Field>
        <div class="actions left">
          <button class="primary" type="submit" disabled={testBusy} aria-keyshortcuts="Control+Enter Meta+Enter">
            Send
          </button>
          <kbd class="shortcut">{MOD}+Enter</kbd>
        </div>
        <ErrorBanner error={testError} />
      </form>
      {result && result.refusal === "not-deployed" && (
        <Notice kind="info">
          <span data-testid="deploy-first">
            Deploy first: {fn.name} has no deployed code yet, so nothing ran and nothing was recorded. Press Deploy on
            the Code tab ({MOD}+S), then send again.
          </span>
        </Notice>
      )}
      {result && result.refusal === "building" && (
        <Notice kind="info">
          <span data-testid="deploy-first">
            The first build of {fn.name} is still running: nothing ran. Send again when the Code tab says it is
            deployed.
          </span>
        </Notice>
      )}
      {result && !result.refusal && <Answer result={result} />}
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
          <div class="stat-value" data-testid="status">
            {result.status}
          </div>
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
          <div class="stat-value" data-testid="cold-start">
            {result.cold === "true" ? "cold" : "warm"}
          </div>
          <div class="stat-label">Start</div>
        </div>
      </div>
      <h3>Body</h3>
      <pre class="log" data-testid="response-body">
        {prettyBody(result.body)}
      </pre>
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
