// Orva's Node adapter: runs inside the jail, loads the handler once, serves framed requests.
// Frames (runtimes/PROTOCOL.md) arrive on stdin and leave on fd 1 through fs.writeSync; console
// output and process.stdout/stderr writes are captured per request with AsyncLocalStorage, so
// nothing the handler prints reaches the frame stream. No npm dependencies.
'use strict';
const fs = require('fs');
const path = require('path');
const { AsyncLocalStorage } = require('async_hooks');
const { pathToFileURL } = require('url');
const util = require('util');

const MAX_FRAME = Number(process.env.ORVA_MAX_FRAME || 16 * 1024 * 1024);
const MAX_LOG = Number(process.env.ORVA_MAX_LOG_BYTES || 256 * 1024);
const CODE_DIR = '/code';
const capture = new AsyncLocalStorage();
const rawStderrWrite = process.stderr.write.bind(process.stderr);

class Capture {
  // `id`: the request whose output this is; the SDK's calls made in its async context carry it (orva/_channel.js)
  constructor(id) { this.parts = []; this.size = 0; this.truncated = false; this.closed = false; this.id = id; }
  add(text) {
    if (this.truncated) return;
    const room = MAX_LOG - this.size;
    if (text.length > room) { text = text.slice(0, room); this.truncated = true; }
    this.parts.push(text); this.size += text.length;
  }
  text() { return this.parts.join(''); }
}

// output of a request goes with its reply; once that is sent (work a handler left running, ctx.waitUntil),
// to the worker's stderr
function emit(text) {
  const cap = capture.getStore();
  if (cap && !cap.closed) cap.add(text); else rawStderrWrite(text);
}
for (const [name, stream] of [['log', 'out'], ['info', 'out'], ['debug', 'out'], ['warn', 'err'], ['error', 'err'], ['trace', 'err']]) {
  console[name] = (...args) => emit(util.format(...args) + '\n');
  void stream;
}
process.stdout.write = (chunk, enc, cb) => { emit(String(chunk)); if (typeof enc === 'function') enc(); else if (cb) cb(); return true; };
process.stderr.write = process.stdout.write;

function writeAll(buf) {
  let off = 0;
  while (off < buf.length) {
    try { off += fs.writeSync(1, buf, off, buf.length - off); } catch (e) { if (e.code !== 'EAGAIN') throw e; }
  }
}

// orvad checks the status (200..599); a value JSON cannot carry as it is goes as its text, so the
// error names what the handler returned
function statusOf(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value : String(value);
}

function send(message) {
  let payload = Buffer.from(JSON.stringify(message), 'utf8');
  if (payload.length > MAX_FRAME) {
    payload = Buffer.from(JSON.stringify({ type: 'error', id: message.id, logs: message.logs || '',
      error: { kind: 'protocol', name: 'ResponseTooLarge', message: `the response (${payload.length} bytes) exceeds the ${MAX_FRAME}-byte limit` } }));
  }
  const header = Buffer.alloc(4); header.writeUInt32BE(payload.length, 0);
  writeAll(Buffer.concat([header, payload]));
}

// What orva/_channel.js uses of this adapter (require('orva') resolves to /node_modules/orva, bound by orvad)
const sdkHost = {
  maxFrame: MAX_FRAME,
  onResult: null,  // set by orva/_channel.js when it is loaded
  requestId() { const cap = capture.getStore(); return cap ? cap.id : null; },
  write(payload) {
    const header = Buffer.alloc(4); header.writeUInt32BE(payload.length, 0);
    writeAll(Buffer.concat([header, payload]));
  },
};
Object.defineProperty(globalThis, Symbol.for('orva.adapter'), { value: sdkHost });

function bodyOf(value) {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return [Buffer.from(value).toString('base64'), true];
  if (typeof value === 'string') return [value, false];
  return [JSON.stringify(value === undefined ? null : value), false];
}

function normalise(result) {
  if (result && typeof result === 'object' && !Buffer.isBuffer(result) && 'statusCode' in result) {
    const headers = Object.assign({}, result.headers || {});
    for (const [k, v] of Object.entries(result.multiValueHeaders || {})) headers[k] = [...v];
    if (result.cookies && result.cookies.length) headers['set-cookie'] = [...result.cookies];
    let body = result.body, b64 = false;
    if (result.isBase64Encoded) { body = String(body); b64 = true; }
    else if (body === undefined || body === null) body = '';
    else [body, b64] = bodyOf(body);
    return { statusCode: statusOf(result.statusCode), headers, body, isBase64Encoded: b64 };
  }
  if (Buffer.isBuffer(result) || result instanceof Uint8Array) {
    return { statusCode: 200, headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from(result).toString('base64'), isBase64Encoded: true };
  }
  if (typeof result === 'string') return { statusCode: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: result, isBase64Encoded: false };
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(result === undefined ? null : result), isBase64Encoded: false };
}

// Frames of Node's module loader and of this adapter say nothing about the user's code: an import
// error's stack keeps the user's frames only (as the Python adapter does).
const LOADER_FRAME = /^\s+at (.*\()?(node:|\/runtime\/adapter\.js|native\))/;

function errorOf(err, kind) {
  const e = err instanceof Error ? err : new Error(String(err));
  let stack = e.stack || String(e);
  if (kind === 'import') stack = stack.split('\n').filter((line) => !LOADER_FRAME.test(line)).join('\n');
  return { kind, name: e.name, message: e.message, stack };
}

function isStream(value) {
  return value && typeof value === 'object' && !Buffer.isBuffer(value) && !('statusCode' in value) &&
    (typeof value[Symbol.asyncIterator] === 'function' || typeof value.getReader === 'function' ||
     (typeof value[Symbol.iterator] === 'function' && typeof value.next === 'function'));
}

async function* iterate(value) {
  if (typeof value.getReader === 'function') {
    const reader = value.getReader();
    for (;;) { const { done, value: v } = await reader.read(); if (done) return; yield v; }
  }
  for await (const item of value) yield item;
}

async function stream(id, value, cap) {
  let started = false;
  const start = (status, headers) => send({ type: 'start', id, statusCode: status, headers: headers || {} });
  for await (const item of iterate(value)) {
    if (!started) {
      started = true;
      if (item && typeof item === 'object' && !Buffer.isBuffer(item) && !(item instanceof Uint8Array) && 'statusCode' in item) {
        start(statusOf(item.statusCode), item.headers); continue;
      }
      start(200);
    }
    const [data, b64] = bodyOf(typeof item === 'string' || Buffer.isBuffer(item) || item instanceof Uint8Array ? item : JSON.stringify(item));
    send({ type: 'chunk', id, data, isBase64Encoded: b64 });
  }
  if (!started) start(200);
  send({ type: 'end', id, logs: cap.text(), logsTruncated: cap.truncated });
}

class Context {
  constructor(c) {
    this.requestId = this.awsRequestId = c.requestId || '';
    this.executionId = c.executionId || '';
    this.functionId = c.functionId || '';
    this.functionName = c.functionName || '';
    this.memoryLimitInMB = c.memoryLimitMb || 0;
    this._deadline = c.deadlineMs || 0;
    this.traceId = c.traceId || '';
    this.spanId = c.spanId || '';
  }
  getRemainingTimeInMillis() { return Math.max(0, Math.floor(this._deadline - Date.now())); }
  // Worker-style ctx: work handed to waitUntil runs on after the response is sent (the request counts as in
  // flight until it settles, so a quit waits for it); passThroughOnException has no origin to fall back to.
  waitUntil(promise) { (this._waits || (this._waits = [])).push(Promise.resolve(promise)); }
  passThroughOnException() {}
}

// ---- Worker-style handlers: fetch(request, env, ctx) with a WHATWG Request and Response ----
// Touching the Request/Response globals loads Node's fetch implementation (~25 ms), so only a module whose
// handler is a fetch handler, or a handler that returns a Response, pays for it.
const FIXED_ORIGIN = 'http://localhost';
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
const BUFFER_LIMIT = 1024 * 1024;  // a body larger than this, or not there yet, is streamed
const CHUNK_LIMIT = 1024 * 1024;   // a larger piece of a streamed body goes as several chunk frames
const TURN = Symbol('turn');
const utf8 = new TextDecoder('utf-8', { fatal: true });

// The event as a Request: the URL's origin is the Host the client used (a fixed one when it has none or a
// malformed one), its path is the event's (what follows /fn/<name> or the route), as the client escaped it.
function requestOf(event) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(event.headers || {})) {
    try { headers.append(name, value); } catch (e) { /* a value Headers refuses: left out */ }
  }
  const host = (event.headers || {}).host;
  const proto = (event.headers || {})['x-forwarded-proto'];  // the first proxy's, when several set it
  const scheme = typeof proto === 'string' && proto.split(',')[0].trim().toLowerCase() === 'https' ? 'https' : 'http';
  const origin = typeof host === 'string' && HOST.test(host) ? `${scheme}://${host}` : FIXED_ORIGIN;
  let where = String(event.rawPath || event.path || '/');
  if (!where.startsWith('/')) where = '/' + where;
  const query = event.rawQuery || '';
  let url;
  try { url = new URL(origin + where + (query ? '?' + query : '')); } catch (e) { url = new URL(FIXED_ORIGIN + '/'); }
  const method = event.method || 'GET';
  const init = { method, headers };
  if (method !== 'GET' && method !== 'HEAD' && event.body) {
    init.body = Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  }
  return new Request(url, init);
}

// fetch(request, env, ctx): env is the function's environment (env_vars and secrets, as process.env); ctx is the
// context (requestId, getRemainingTimeInMillis(), waitUntil(), ...) with the Orva event it came from as ctx.event
// (requestContext.sourceIp and the like, which a Request cannot carry).
function fetchHandler(owner, fetch) {
  void Request;  // load the fetch implementation with the module, not on the first request
  return (event, context) => {
    context.event = event;
    return fetch.call(owner, requestOf(event), process.env, context);
  };
}

// A WHATWG Response (or one of its look-alikes), told apart without touching the global Response
function isResponse(value) {
  return value !== null && typeof value === 'object' && typeof value.status === 'number' &&
    typeof value.arrayBuffer === 'function' && value.headers !== null && typeof value.headers === 'object' &&
    typeof value.headers.get === 'function' && !('statusCode' in value);
}

function responseHeaders(h) {
  const out = {};
  h.forEach((value, name) => { if (name !== 'set-cookie') out[name] = value; });
  let cookies = typeof h.getSetCookie === 'function' ? h.getSetCookie() : null;
  if (cookies === null && typeof h.raw === 'function') cookies = [].concat(h.raw()['set-cookie'] || []);  // node-fetch
  if (cookies === null) { const one = h.get('set-cookie'); cookies = one ? [one] : []; }
  if (cookies.length) out['set-cookie'] = cookies;
  return out;
}

function bytesOf(chunk) {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (chunk instanceof ArrayBuffer) return Buffer.from(chunk);
  if (ArrayBuffer.isView(chunk)) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(JSON.stringify(chunk === undefined ? null : chunk), 'utf8');
}

function textOrBase64(buf) {
  try { return [utf8.decode(buf), false]; } catch (e) { return [buf.toString('base64'), true]; }
}

// A Response whose whole body is there at once (a string, bytes, JSON, a stream that was filled before it
// was returned) and not over BUFFER_LIMIT goes as one response frame; any other is streamed as it comes.
async function respond(id, res, cap, state) {
  const status = statusOf(res.status);
  const headers = responseHeaders(res.headers);
  const done = () => ({ logs: cap.text(), logsTruncated: cap.truncated });
  if (res.body === null || res.body === undefined) {
    send({ type: 'response', id, response: { statusCode: status, headers, body: '', isBase64Encoded: false }, ...done() });
    return;
  }
  // a WHATWG ReadableStream, or the Node stream (async iterable) of a node-fetch style Response
  let reader;
  if (typeof res.body.getReader === 'function') reader = res.body.getReader();
  else if (typeof res.body[Symbol.asyncIterator] === 'function') {
    const it = res.body[Symbol.asyncIterator]();
    reader = { read: () => it.next() };
  } else throw new TypeError('the Response body is neither a ReadableStream nor an async iterable');
  const parts = [];
  let size = 0, pending = null;
  const turn = new Promise((resolve) => setImmediate(resolve, TURN));  // what is not there by now is streamed
  for (;;) {
    const read = reader.read();
    const got = await Promise.race([read, turn]);
    if (got === TURN) { pending = read; break; }
    if (got.done) {
      const [body, b64] = textOrBase64(parts.length === 1 ? parts[0] : Buffer.concat(parts, size));
      send({ type: 'response', id, response: { statusCode: status, headers, body, isBase64Encoded: b64 }, ...done() });
      return;
    }
    const buf = bytesOf(got.value);
    parts.push(buf); size += buf.length;
    if (size > BUFFER_LIMIT) break;
  }
  state.started = true;
  send({ type: 'start', id, statusCode: status, headers });
  const chunk = (buf) => {
    for (let off = 0; off < buf.length; off += CHUNK_LIMIT) {
      const [data, b64] = textOrBase64(buf.subarray(off, off + CHUNK_LIMIT));
      send({ type: 'chunk', id, data, isBase64Encoded: b64 });
    }
  };
  for (const buf of parts) chunk(buf);
  for (;;) {
    const got = pending !== null ? await pending : await reader.read();
    pending = null;
    if (got.done) break;
    chunk(bytesOf(got.value));
  }
  send({ type: 'end', id, ...done() });
}

// ORVA_TRACE_ID / ORVA_SPAN_ID for the request (when orvad sent its trace); with requests running at once they
// hold the latest request's (context.traceId is each request's own)
function traceEnv(context) {
  if (context.traceId) { process.env.ORVA_TRACE_ID = context.traceId; process.env.ORVA_SPAN_ID = context.spanId; }
  else if (process.env.ORVA_TRACE_ID !== undefined) { delete process.env.ORVA_TRACE_ID; delete process.env.ORVA_SPAN_ID; }
}

async function serveOne(handler, initError, message) {
  const cap = new Capture(message.id);
  const context = new Context(message.context || {});
  traceEnv(context);
  await capture.run(cap, async () => {
    const state = { started: false };  // a start frame went out: a failure now ends the stream
    try {
      if (initError) {
        cap.add(initError.stack + '\n');
        send({ type: 'error', id: message.id, error: initError, logs: cap.text(), logsTruncated: cap.truncated });
        return;
      }
      let result = await handler(message.event, context);
      if (isResponse(result)) { await respond(message.id, result, cap, state); return; }
      if (isStream(result)) { state.started = true; await stream(message.id, result, cap); return; }
      send({ type: 'response', id: message.id, response: normalise(result), logs: cap.text(), logsTruncated: cap.truncated });
    } catch (err) {
      const error = errorOf(err, 'handler');
      cap.add(error.stack + '\n');
      send({ type: state.started ? 'end' : 'error', id: message.id, error, logs: cap.text(), logsTruncated: cap.truncated });
    }
  });
  cap.closed = true;
  if (context._waits) {
    for (const outcome of await Promise.allSettled(context._waits)) {
      if (outcome.status === 'rejected') rawStderrWrite(`waitUntil: ${outcome.reason && outcome.reason.stack || outcome.reason}\n`);
    }
  }
}

// The shapes a module may export, in the order they are looked for (docs/HANDLERS.md)
const EXTRA_NAMES = ['lambda_handler', 'main'];

// a property the module set itself, not one every object or function inherits (toString, call, ...)
function own(obj, key) {
  if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) return undefined;
  let value;
  try { value = obj[key]; } catch (e) { return undefined; }
  if (value === Object.prototype[key] || value === Function.prototype[key]) return undefined;
  return value;
}

function findHandler(mod, name) {
  const names = [name, ...EXTRA_NAMES.filter((n) => n !== name)];
  for (const n of names) {  // exports.handler, exports.lambda_handler, exports.main; ES-module named exports
    const fn = own(mod, n);
    if (typeof fn === 'function') return (event, context) => fn.call(mod, event, context);
  }
  if (typeof mod === 'function') return mod;  // module.exports = fn
  const def = own(mod, 'default');
  if (typeof def === 'function') return def;  // export default fn (and a transpiled exports.default)
  const defFetch = own(def, 'fetch');
  if (typeof defFetch === 'function') return fetchHandler(def, defFetch);  // export default { fetch }
  const fetch = own(mod, 'fetch');
  if (typeof fetch === 'function') return fetchHandler(mod, fetch);  // exports.fetch, module.exports = { fetch }
  const defNamed = own(def, name);
  if (typeof defNamed === 'function') return (event, context) => defNamed.call(def, event, context);  // export default { handler }
  return null;
}

// what the module does export, for the error that says none of it is usable
function exportsOf(mod) {
  if (mod === null || mod === undefined) return 'It exports nothing.';
  if (typeof mod !== 'object' && typeof mod !== 'function') return `It exports a ${typeof mod}.`;
  const seen = [];
  const describe = (key, value) => `${key}${typeof value === 'function' ? '' : ` (${value === null ? 'null' : typeof value})`}`;
  for (const key of Object.keys(mod)) {
    if (key === '__esModule') continue;
    const value = own(mod, key);
    if (key === 'default' && value !== null && typeof value === 'object') {
      const inner = Object.keys(value).slice(0, 8).map((k) => describe(k, own(value, k)));
      seen.push(`default (an object${inner.length ? ': ' + inner.join(', ') : ''})`);
    } else seen.push(describe(key, value));
  }
  if (!seen.length) return 'It exports nothing.';
  return `It exports: ${seen.slice(0, 8).join(', ')}${seen.length > 8 ? ', ...' : ''}.`;
}

function unusable(entry, name, mod) {
  const custom = name === 'handler' ? '' : ` (named ${name})`;
  return `${entry} does not export a function handler${custom}. Accepted: exports.${name}, exports.lambda_handler ` +
    'or exports.main (or ES-module named exports), module.exports = fn, export default fn, or a Worker-style ' +
    'fetch(request, env, ctx) returning a Response (export default { fetch }, exports.fetch, module.exports = ' +
    `{ fetch }). ${exportsOf(mod)}`;
}

async function loadHandler() {
  const entry = process.env.ORVA_ENTRYPOINT || 'handler.js';
  const name = process.env.ORVA_HANDLER || 'handler';
  const file = path.join(CODE_DIR, entry);
  let mod;
  try {
    mod = require(file);
  } catch (err) {
    // an ES module that require() cannot load (top-level await; Node versions without require(esm))
    if (err && (err.code === 'ERR_REQUIRE_ESM' || err.code === 'ERR_REQUIRE_ASYNC_MODULE' ||
                err instanceof SyntaxError && /import|export/.test(err.message))) {
      mod = await import(pathToFileURL(file).href);
    } else throw err;
  }
  const fn = findHandler(mod, name);
  if (fn === null) throw new Error(unusable(entry, name, mod));
  return fn;
}

// Between requests no process but the adapter may run in the jail (a handler's forgotten children). The
// adapter is the jail's PID 1; outside a jail nothing is touched (kill(-1) there would reach the whole host).
// child_process is how a handler starts processes: using it marks the worker, and only a marked worker looks
// in /proc when it falls idle, so the usual request pays nothing. What is left is killed.
let spawned = false;
if (process.pid === 1) {
  const cp = require('child_process');
  for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
    const original = cp[name];
    cp[name] = function (...args) { spawned = true; return original.apply(this, args); };
  }
  require('module').syncBuiltinESMExports();  // `import { spawn } from 'child_process'` sees the same
}

function killStrays() {
  spawned = false;
  let others = [];
  try { others = fs.readdirSync('/proc').filter((p) => p !== '1' && /^[0-9]+$/.test(p)); } catch (e) { return; }
  if (!others.length) return;
  try { process.kill(-1, 'SIGKILL'); } catch (e) { /* nothing left to signal */ }
}

let inflight = 0, quitting = false;
// quit: take no more requests, let those in flight finish (up to 5 s, as in Python), then exit.
function quit() {
  quitting = true;
  process.stdin.pause();
  if (!inflight) setImmediate(() => process.exit(0));
  else setTimeout(() => process.exit(0), 5000);
}

async function main() {
  let handler = null, initError = null;
  const initCap = new Capture();
  await capture.run(initCap, async () => {
    try { handler = await loadHandler(); } catch (err) { initError = errorOf(err, 'import'); }
  });
  if (initCap.parts.length) rawStderrWrite(initCap.text());
  initCap.closed = true;  // what timers started at import print later goes to stderr as it comes
  send({ type: 'ready', runtime: 'node', version: process.versions.node, initError });
  let buffer = Buffer.alloc(0);
  process.stdin.on('data', (data) => {
    buffer = buffer.length ? Buffer.concat([buffer, data]) : data;
    while (buffer.length >= 4) {
      const size = buffer.readUInt32BE(0);
      if (size > MAX_FRAME) { rawStderrWrite(`orva adapter: refused a ${size}-byte frame\n`); process.exit(70); }
      if (buffer.length < 4 + size) break;
      const message = JSON.parse(buffer.subarray(4, 4 + size).toString('utf8'));
      buffer = buffer.subarray(4 + size);
      if (message.type === 'quit') { quit(); return; }
      if (message.type === 'result') { if (sdkHost.onResult) sdkHost.onResult(message); continue; }
      if (message.type === 'invoke') {
        inflight += 1;
        serveOne(handler, initError, message).finally(() => {
          inflight -= 1;
          if (quitting && !inflight) process.exit(0);
          if (spawned && !inflight) killStrays();
        });
      }
    }
  });
  process.stdin.on('end', quit);
}

process.on('unhandledRejection', (err) => emit(`unhandled rejection: ${err && err.stack || err}\n`));
main();
