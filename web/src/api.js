// The dashboard's only way to the server: the public /api/v1, authenticated by the session cookie.

export class ApiError extends Error {
  constructor(status, envelope) {
    const err = (envelope && envelope.error) || {};
    super(err.message || `request failed with status ${status}`);
    this.status = status;
    this.code = err.code || "HTTP_" + status;
    this.hint = err.hint || "";
    this.details = err.details || null;
    this.requestId = err.request_id || null;
  }
}

// Called on any 401 outside the login flow; main.jsx sends the user to login and back.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

// Where functions are served: ORVA_FUNCTIONS_ORIGIN when set (auth/status says), else this origin.
let functionsOrigin = null;
export function setFunctionsOrigin(url) {
  functionsOrigin = url ? url.replace(/\/+$/, "") : null;
}
export function functionsBase() {
  return functionsOrigin || window.location.origin;
}
export function functionUrl(name, path = "/") {
  return `${functionsBase()}/fn/${encodeURIComponent(name)}${path}`;
}

export async function request(method, path, body, { raw = false, quiet401 = false, headers = {} } = {}) {
  const url = path.startsWith("/") ? path : `/api/v1/${path}`;
  // The API refuses cookie-authenticated changes without X-Orva-CSRF: a page of another origin
  // cannot add it without CORS, which orvad never grants. Sent on every same-origin call: API calls,
  // and the Test tab's /fn calls (an api_key function accepts the session only with it).
  const init = { method, headers: { "X-Orva-CSRF": "1", ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    if (typeof body === "string") {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw await fetchFailed(e);
  }
  setReachable(true);
  if (raw) return res;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const error = new ApiError(res.status, typeof data === "object" ? data : null);
    if (res.status === 401 && !quiet401) onUnauthorized(error);
    throw error;
  }
  return data;
}

export const api = {
  get: (path, opts) => request("GET", path, undefined, opts),
  post: (path, body, opts) => request("POST", path, body ?? {}, opts),
  put: (path, body, opts) => request("PUT", path, body, opts),
  patch: (path, body, opts) => request("PATCH", path, body, opts),
  del: (path, opts) => request("DELETE", path, undefined, opts),
};

// Every item of a paged list, following next_cursor (for pickers that must offer all of them).
export async function allPages(path, key) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api.get(`${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page[key]);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Whether orvad answers at all. A failed fetch or a broken event stream asks /health/live; while
// that fails the dashboard says so (ConnectionBanner) and asks again every RETRY_MS until orvad
// answers, then tells every watcher (views reload what failed, streams reconnect).
const RETRY_MS = 2000;
let reachable = true;
let probing = null;
let retryTimer = null;
const watchers = new Set();

export function isReachable() {
  return reachable;
}

// fn(reachable) on every change; returns the unwatch function.
export function watchConnection(fn) {
  watchers.add(fn);
  return () => watchers.delete(fn);
}

function setReachable(value) {
  if (value === reachable) return;
  reachable = value;
  clearTimeout(retryTimer);
  if (!value) retryTimer = setTimeout(retry, RETRY_MS);
  for (const fn of [...watchers]) fn(value);
}

async function retry() {
  if (!(await probe())) retryTimer = setTimeout(retry, RETRY_MS);
}

// Asks orvad whether it is there (any HTTP answer counts); resolves to the new state.
export function probe() {
  if (!probing) {
    probing = fetch("/health/live", { cache: "no-store", credentials: "same-origin" })
      .then(
        () => true,
        () => false,
      )
      .then((ok) => {
        probing = null;
        setReachable(ok);
        return ok;
      });
  }
  return probing;
}

// A fetch that threw: orvad gone (UNREACHABLE), or a request the browser refused to send.
async function fetchFailed(e) {
  if (!(await probe())) {
    return new ApiError(0, {
      error: {
        code: "UNREACHABLE",
        message: "cannot reach orvad",
        hint: "the dashboard keeps retrying by itself; check that orvad is running",
      },
    });
  }
  return new ApiError(0, {
    error: { code: "REQUEST_FAILED", message: `the browser did not send the request: ${e.message}` },
  });
}

// An EventSource on the API whose listeners are named by event type; returns a closer. The browser
// reconnects by itself after a network error; when it gives up (an error answer, e.g. while orvad
// stops) the stream is opened again, every few seconds at most, so a live view comes back with orvad.
export function subscribe(path, handlers) {
  let source = null;
  let closed = false;
  let timer = null;
  let backoff = 1000;
  const open = () => {
    source = new EventSource(`/api/v1/${path}`, { withCredentials: true });
    for (const [type, fn] of Object.entries(handlers)) {
      if (type === "error" || type === "open") continue;
      source.addEventListener(type, (event) => fn(JSON.parse(event.data)));
    }
    source.onopen = (event) => {
      backoff = 1000;
      setReachable(true);
      if (handlers.open) handlers.open(event);
    };
    source.onerror = (event) => {
      if (handlers.error) handlers.error(event);
      if (closed) return;
      probe();
      if (source.readyState === EventSource.CLOSED) {
        timer = setTimeout(open, backoff);
        backoff = Math.min(backoff * 2, 30000);
      }
    };
  };
  open();
  return () => {
    closed = true;
    clearTimeout(timer);
    source.close();
  };
}

// A request whose answer is a text/event-stream, read with fetch and a stream reader (EventSource cannot POST
// or send the CSRF header): each frame `event: <name>\ndata: <json>` calls handlers[name](data); a `: ping`
// comment calls handlers.ping. Resolves when the server ends the stream; an error answer (4xx/5xx, JSON)
// rejects with its ApiError before any frame. Pass an AbortSignal to stop reading (the server side carries on).
export async function streamRequest(method, path, body, handlers, { signal } = {}) {
  const init = {
    method,
    headers: { "X-Orva-CSRF": "1", Accept: "text/event-stream" },
    credentials: "same-origin",
    signal,
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(`/api/v1/${path}`, init);
  } catch (e) {
    if (e.name === "AbortError") return;
    throw await fetchFailed(e);
  }
  setReachable(true);
  if (!res.ok || !(res.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    const error = new ApiError(res.status, data);
    if (res.status === 401) onUnauthorized(error);
    if (!res.ok) throw error;
    return; // a JSON answer where a stream was expected: nothing to follow
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const dispatch = (block) => {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) {
        if (handlers.ping) handlers.ping();
      } else if (line.startsWith("event:")) {
        event = line.slice(6).trim();
      } else if (line.startsWith("data:")) {
        data.push(line.slice(5).replace(/^ /, ""));
      }
    }
    if (!data.length || !handlers[event]) return;
    let parsed;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    handlers[event](parsed);
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
    if (buffer.trim()) dispatch(buffer);
  } catch (e) {
    if (e.name === "AbortError") return;
    probe();
    throw new ApiError(0, {
      error: {
        code: "STREAM_BROKEN",
        message: "the answer stopped arriving",
        hint: "the assistant carries on in orvad: open the conversation again to see the rest",
      },
    });
  }
}
