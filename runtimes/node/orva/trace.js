// orva.trace: user spans inside the invocation's span (docs/SDK.md, Traces).
//
//   const { trace } = require("orva");
//   const user = await trace.span("load-user", async (span) => {
//     span.set("rows", 3);
//     return await trace.span("query", async () => db.get(id));   // nested: a child of load-user
//   }, { userId: 42 });
//
// trace.span(name, fn, attributes?) runs fn(span) and resolves to what it returns; an error thrown by fn
// marks the span "error" and is rethrown. Spans nest through AsyncLocalStorage. Nothing is sent while a
// span tree is open: when its outermost span ends, the whole tree goes to orvad in one call. The trace is
// always the invocation's own (orvad takes it from its own records). Attributes: at most 32, values
// string (up to 1024 characters), number, boolean or null. A span orvad cannot record (256 per
// invocation at most) is dropped with one line on stderr; it never fails the handler.
"use strict";

const crypto = require("crypto");
const { AsyncLocalStorage } = require("async_hooks");
const channel = require("./_channel.js");

const MAX_PER_CALL = 64;
const current = new AsyncLocalStorage();
let warned = false;

function newId() {
  const id = crypto.randomBytes(8).toString("hex");
  return id === "0000000000000000" ? newId() : id;
}

class Span {
  constructor(name, attributes, parent) {
    if (typeof name !== "string" || !name) throw new TypeError("trace.span(name, fn): name is a non-empty string");
    this.name = name.slice(0, 200);
    this.attributes = Object.assign({}, attributes || {});
    this.spanId = newId();
    this.parent = parent || null;
    this.status = "ok";
    this.start = performance.timeOrigin + performance.now();
    this.tree = this.parent === null ? [] : null; // the outermost span: its tree's finished spans
    this.open = true;
  }

  set(key, value) { this.attributes[String(key)] = value; return this; }
  setAttribute(key, value) { return this.set(key, value); }
  setStatus(status) { this.status = status === "error" ? "error" : "ok"; return this; }

  // this span's record added to its tree; the tree's spans when this span ends it (else null)
  end(error) {
    const end = performance.timeOrigin + performance.now();
    this.open = false;
    if (error !== undefined) {
      this.status = "error";
      if (!("error.type" in this.attributes)) {
        this.attributes["error.type"] = String((error && error.name) || typeof error).slice(0, 200);
      }
    }
    const record = {
      name: this.name,
      span_id: this.spanId,
      start: Math.round(this.start * 1000) / 1000,
      end: Math.round(Math.max(end, this.start) * 1000) / 1000,
      status: this.status,
    };
    const attrs = clean(this.attributes);
    if (Object.keys(attrs).length) record.attributes = attrs;
    if (this.parent !== null) record.parent_span_id = this.parent.spanId;
    let root = this;
    while (root.parent !== null && root.tree === null) root = root.parent;
    if (root !== this && root.open && root.tree !== null) {
      root.tree.push(record);
      return null;
    }
    const batch = (this.tree || []).concat([record]);
    this.tree = null;
    return batch;
  }
}

function clean(attributes) {
  const out = {};
  for (const [key, value] of Object.entries(attributes).slice(0, 32)) {
    const ok = value === null || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value));
    out[String(key).slice(0, 128)] = ok ? value : String(value).slice(0, 1024);
  }
  return out;
}

// parents before their children, at most MAX_PER_CALL spans a call
function chunks(batch) {
  const byId = new Map(batch.map((r) => [r.span_id, r]));
  const depth = (r) => {
    let n = 0;
    while (r.parent_span_id && byId.has(r.parent_span_id) && n <= batch.length) { r = byId.get(r.parent_span_id); n += 1; }
    return n;
  };
  const ordered = batch.map((r) => [depth(r), r]).sort((a, b) => a[0] - b[0]).map((p) => p[1]);
  const out = [];
  for (let i = 0; i < ordered.length; i += MAX_PER_CALL) out.push(ordered.slice(i, i + MAX_PER_CALL));
  return out;
}

async function send(batch) {
  if (!batch) return;
  try {
    for (const chunk of chunks(batch)) await channel.call("trace.span", { spans: chunk });
  } catch (err) {
    if (!warned) {
      warned = true;
      process.stderr.write(`orva.trace: spans dropped: ${err.code}: ${err.message}\n`);
    }
  }
}

// Run fn(span) inside a new span; resolves to fn's result (rejects with its error, the span marked error).
async function span(name, fn, attributes) {
  if (typeof name === "function") throw new TypeError("trace.span(name, fn, attributes?): the name comes first");
  const s = new Span(name, attributes, current.getStore() || null);
  let result;
  try {
    result = await current.run(s, () => (typeof fn === "function" ? fn(s) : undefined));
  } catch (err) {
    await send(s.end(err === undefined ? null : err));
    throw err;
  }
  await send(s.end());
  return result;
}

function traceId() { return process.env.ORVA_TRACE_ID || null; }
function spanId() { return process.env.ORVA_SPAN_ID || null; }

module.exports = { span, Span, traceId, spanId };
