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
  constructor() { this.parts = []; this.size = 0; this.truncated = false; }
  add(text) {
    if (this.truncated) return;
    const room = MAX_LOG - this.size;
    if (text.length > room) { text = text.slice(0, room); this.truncated = true; }
    this.parts.push(text); this.size += text.length;
  }
  text() { return this.parts.join(''); }
}

function emit(text) {
  const cap = capture.getStore();
  if (cap) cap.add(text); else rawStderrWrite(text);
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
  }
  getRemainingTimeInMillis() { return Math.max(0, Math.floor(this._deadline - Date.now())); }
}

async function serveOne(handler, initError, message) {
  const cap = new Capture();
  await capture.run(cap, async () => {
    let streaming = false;
    try {
      if (initError) {
        cap.add(initError.stack + '\n');
        send({ type: 'error', id: message.id, error: initError, logs: cap.text(), logsTruncated: cap.truncated });
        return;
      }
      let result = await handler(message.event, new Context(message.context || {}));
      if (isStream(result)) { streaming = true; await stream(message.id, result, cap); return; }
      send({ type: 'response', id: message.id, response: normalise(result), logs: cap.text(), logsTruncated: cap.truncated });
    } catch (err) {
      const error = errorOf(err, 'handler');
      cap.add(error.stack + '\n');
      send({ type: streaming ? 'end' : 'error', id: message.id, error, logs: cap.text(), logsTruncated: cap.truncated });
    }
  });
}

async function loadHandler() {
  const entry = process.env.ORVA_ENTRYPOINT || 'handler.js';
  const name = process.env.ORVA_HANDLER || 'handler';
  const file = path.join(CODE_DIR, entry);
  let mod;
  try {
    mod = require(file);
  } catch (err) {
    if (err && (err.code === 'ERR_REQUIRE_ESM' || err instanceof SyntaxError && /import|export/.test(err.message))) {
      mod = await import(pathToFileURL(file).href);
    } else throw err;
  }
  const fn = mod && (mod[name] || (mod.default && mod.default[name]) || (typeof mod.default === 'function' ? mod.default : undefined));
  if (typeof fn !== 'function') throw new Error(`${entry} does not export a function ${name}(event, context)`);
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
