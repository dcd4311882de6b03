// One working state per function page: the code and dependencies being edited, the deployed source
// they are compared with, the build being followed, and the Test request and its answer. It lives
// here, outside the tabs, so switching tabs or leaving the page and coming back loses nothing; the
// draft is also kept in sessionStorage (this browser tab only), so a reload keeps it. Header values
// of the Test request may carry credentials: they stay in memory only.
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, request, subscribe } from "../api.js";

export const TEMPLATES = {
  python: `import json


def handler(event, context):
    # event: method, path, query, headers, body (a string); see the Test tab
    data = json.loads(event["body"]) if event.get("body") else {}
    name = data.get("name") or event["query"].get("name", "world")
    print(f"saying hello to {name}")
    return {"statusCode": 200, "body": {"hello": name}}
`,
  node: `export async function handler(event, context) {
  // event: method, path, query, headers, body (a string); see the Test tab
  const data = event.body ? JSON.parse(event.body) : {};
  const name = data.name || event.query.name || "world";
  console.log(\`saying hello to \${name}\`);
  return { statusCode: 200, body: { hello: name } };
}
`,
};

export function languageOf(fn) {
  return fn.runtime.startsWith("python") ? "python" : "node";
}

const DEFAULT_TEST = { method: "POST", path: "/", headers: "Content-Type: application/json", body: '{"name": "Orva"}' };
const LOG_DEADLINE_MS = 5000; // executions are written a few milliseconds after the response
const storageKey = (id) => `orva.function.${id}`;

const spaces = new Map(); // function id -> state
const listeners = new Map(); // function id -> Set of setState of mounted pages
const streams = new Map(); // function id -> closer of the followed build's event stream
const reloaders = new Map(); // function id -> reload() of the mounted page (refreshes the function record)

function restored(id) {
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(storageKey(id)) || "{}") || {};
  } catch {
    saved = {};
  }
  return {
    code: saved.code ?? null,
    deps: saved.deps ?? "",
    base: saved.base ?? null,
    revision: 0,
    test: { ...DEFAULT_TEST, ...(saved.test || {}) },
    build: null,
    deploying: false,
    deployError: null,
    loadError: null,
    result: null,
    testBusy: false,
    testError: null,
  };
}

export function workspaceOf(id) {
  if (!spaces.has(id)) spaces.set(id, restored(id));
  return spaces.get(id);
}

// Undeployed edits: the editor or the dependencies differ from the deployed source.
export function isDirty(s) {
  return Boolean(s.base) && s.code !== null && (s.code !== s.base.code || s.deps !== s.base.deps);
}

function persist(id, s) {
  const { headers, ...test } = s.test; // header values stay in memory
  const saved = isDirty(s) ? { code: s.code, deps: s.deps, base: s.base, test } : { test };
  try {
    sessionStorage.setItem(storageKey(id), JSON.stringify(saved));
  } catch {
    // storage full or disabled: the draft still lives in memory for this session
  }
}

const PERSISTED = ["code", "deps", "base", "test"];

function update(id, patch) {
  const current = workspaceOf(id);
  const change = typeof patch === "function" ? patch(current) : patch;
  const next = { ...current, ...change };
  spaces.set(id, next);
  if (PERSISTED.some((k) => k in change)) persist(id, next);
  for (const fn of listeners.get(id) || []) fn(next);
}

// A deleted function's draft goes with it.
export function forget(id) {
  if (streams.has(id)) streams.get(id)();
  streams.delete(id);
  spaces.delete(id);
  try {
    sessionStorage.removeItem(storageKey(id));
  } catch {
    // nothing stored
  }
}

async function loadSource(fn) {
  const id = fn.id;
  let src = { code: TEMPLATES[languageOf(fn)], deps: "" };
  if (fn.active_deployment_id) {
    try {
      const got = await api.get(`functions/${id}/source`);
      src = { code: got.code, deps: got.dependencies || "" };
    } catch (loadError) {
      const s = workspaceOf(id);
      update(id, s.code === null ? { loadError, code: src.code, deps: "", revision: s.revision + 1 } : { loadError });
      return;
    }
  }
  const s = workspaceOf(id);
  // edits in progress stay; otherwise the editor shows what is deployed now (after a rollback too)
  if (s.code === null || !isDirty(s))
    update(id, { code: src.code, deps: src.deps, base: src, revision: s.revision + 1, loadError: null });
  else update(id, { base: src, loadError: null });
}

function follow(id, deployment, sent) {
  if (streams.has(id)) streams.get(id)();
  update(id, { build: { deployment, lines: [], done: false } });
  const addLine = (line) => update(id, (s) => ({ build: { ...s.build, lines: [...s.build.lines, line] } }));
  const finish = (record) => {
    if (streams.has(id)) streams.get(id)();
    streams.delete(id);
    update(id, (s) => ({
      build: { ...s.build, deployment: record, done: true },
      ...(record.status === "succeeded" ? { base: sent } : {}),
    }));
    const reload = reloaders.get(id);
    if (reload) reload();
  };
  streams.set(
    id,
    subscribe(`deployments/${deployment.id}/stream`, {
      open: () => update(id, (s) => ({ build: { ...s.build, lines: [] } })), // the stream replays from the start
      log: (l) => addLine(l.line),
      phase: (p) => addLine(`» ${p.phase || p.name}`),
      succeeded: finish,
      failed: finish,
      superseded: finish,
    }),
  );
}

async function deploy(fn) {
  const id = fn.id;
  const s = workspaceOf(id);
  if (s.deploying || (s.build && !s.build.done) || s.code === null) return;
  const sent = { code: s.code, deps: s.deps };
  update(id, { deploying: true, deployError: null, build: null }); // the last build's log and verdict go at once
  try {
    const body = { code: sent.code, filename: fn.entrypoint };
    if (sent.deps.trim()) body.dependencies = sent.deps;
    follow(id, await api.post(`functions/${id}/deploy-inline`, body), sent);
  } catch (deployError) {
    update(id, { deployError });
  } finally {
    update(id, { deploying: false });
  }
}

function parseHeaders(text) {
  const headers = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf(":");
    if (at < 1)
      throw new ApiError(400, {
        error: {
          code: "VALIDATION",
          message: `not a header: ${line}`,
          hint: "write one header per line as Name: value",
          details: { field: "headers" },
        },
      });
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

// orvad's own refusal to run a function without code (nothing ran, nothing was recorded), as
// opposed to a handler's answer: no execution id, and the envelope's code.
function refusalOf(res, text) {
  if (res.headers.get("x-orva-execution-id")) return null;
  let code = null;
  try {
    code = JSON.parse(text).error.code;
  } catch {
    return null;
  }
  if (res.status === 409 && code === "NOT_DEPLOYED") return "not-deployed";
  if (res.status === 503 && code === "BUILDING") return "building";
  return null;
}

async function sendTest(fn) {
  const id = fn.id;
  const s = workspaceOf(id);
  if (s.testBusy) return;
  update(id, { testBusy: true, testError: null, result: null });
  try {
    const { method, path, headers, body } = s.test;
    const sent = ["GET", "HEAD"].includes(method) ? undefined : body;
    const started = performance.now();
    const res = await request(
      method,
      `/fn/${encodeURIComponent(fn.name)}${path.startsWith("/") ? path : `/${path}`}`,
      sent,
      { raw: true, headers: parseHeaders(headers) },
    );
    const text = await res.text();
    const refusal = refusalOf(res, text);
    if (refusal) {
      update(id, { result: { refusal } });
      return;
    }
    const answer = {
      status: res.status,
      headers: [...res.headers.entries()],
      body: text,
      elapsed: performance.now() - started,
      duration: res.headers.get("x-orva-duration-ms"),
      cold: res.headers.get("x-orva-cold-start"),
      execution: res.headers.get("x-orva-execution-id"),
      logs: null,
    };
    update(id, { result: answer });
    if (answer.execution) {
      const logs = await executionLogs(answer.execution);
      update(id, (cur) => (cur.result === answer ? { result: { ...answer, logs } } : {}));
    }
  } catch (testError) {
    update(id, { testError });
  } finally {
    update(id, { testBusy: false });
  }
}

// The page's handle on its function's working state; `reload` refreshes the function record.
export function useWorkspace(fn, reload) {
  const [state, setState] = useState(() => workspaceOf(fn.id));
  useEffect(() => {
    setState(workspaceOf(fn.id));
    if (!listeners.has(fn.id)) listeners.set(fn.id, new Set());
    listeners.get(fn.id).add(setState);
    reloaders.set(fn.id, reload);
    return () => {
      listeners.get(fn.id).delete(setState);
      if (reloaders.get(fn.id) === reload) reloaders.delete(fn.id);
    };
  }, [fn.id]);
  useEffect(() => {
    loadSource(fn);
  }, [fn.id, fn.active_deployment_id]);
  return {
    state,
    dirty: isDirty(state),
    set: (patch) => update(fn.id, patch),
    setTest: (patch) => update(fn.id, (s) => ({ test: { ...s.test, ...patch } })),
    deploy: () => deploy(fn),
    send: () => sendTest(fn),
  };
}
