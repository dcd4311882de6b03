// orva.invoke: call another function of this orvad (docs/SDK.md, Function-to-function calls). The call
// goes to orvad over the worker's own channel; orvad checks it against this function's may_invoke (the
// callee's auth_mode is then satisfied), refuses chains deeper than 8 and cycles, and gives the callee at
// most this invocation's remaining time.
//
//   const { invoke } = require("orva");
//   const reply = await invoke("resize", { url });       // POST / with a JSON body
//   reply.status, reply.statusCode, reply.headers, reply.body, reply.json, reply.text
//   // body: the parsed JSON when the callee answered JSON (Go Orva's shape), else the text (a Buffer when
//   // not UTF-8); text: always the raw text or Buffer; json: the parsed JSON or null
//   await invoke("users", undefined, { event: { method: "GET", path: "/42", query: { full: "1" } } });
//   const s = await invoke("ticks", {}, { stream: true }); // s.status, s.headers
//   for await (const chunk of s) { ... }                  // Buffers, as the callee sends them
//
// A refusal or a failure of the callee rejects with an OrvaError carrying its code (FORBIDDEN, NOT_FOUND,
// CALL_DEPTH_EXCEEDED, CALL_CYCLE, FUNCTION_ERROR, TIMEOUT, ...).
"use strict";

const channel = require("./_channel.js");

function fromWire(value) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$bytes" && typeof value.$bytes === "string") {
      return Buffer.from(value.$bytes, "base64");
    }
  }
  return value;
}

function toWire(body) {
  if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
    return { $bytes: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("base64") };
  }
  return body;
}

function argsOf(fn, payload, options) {
  const args = { function: fn };
  const event = options && options.event;
  if (event !== undefined && event !== null) {
    if (payload !== undefined) throw new TypeError("invoke takes a payload or an event, not both");
    const copy = { ...event };
    if ("body" in copy) copy.body = toWire(copy.body);
    args.event = copy;
  } else if (payload !== undefined) {
    args.payload = payload;
  }
  return args;
}

function chunkOf(item) {
  const data = fromWire(item && item.chunk !== undefined ? item.chunk : "");
  return Buffer.isBuffer(data) ? data : Buffer.from(String(data));
}

// invoke(fn, payload?, { event?, stream? }): the callee's reply {status, statusCode, headers, body, json, text}; with
// stream: true, an async iterable of Buffer chunks with status and headers
async function invoke(fn, payload, options) {
  const args = argsOf(fn, payload, options);
  if (options && options.stream) {
    const it = channel.stream("invoke", { ...args, stream: true });
    const first = await it.next(); // the callee's status and headers, or its refusal (thrown here)
    const head = first.done ? {} : first.value || {};
    return {
      status: head.status,
      headers: head.headers || {},
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        const item = await it.next();
        return item.done ? item : { done: false, value: chunkOf(item.value) };
      },
      async return() {
        return it.return();
      },
    };
  }
  const raw = await channel.call("invoke", args);
  const text = fromWire(raw.body === undefined ? "" : raw.body);
  const parsed = raw.json !== undefined; // orvad parsed it: the callee answered application/json
  return {
    status: raw.status,
    statusCode: raw.status,
    headers: raw.headers || {},
    body: parsed ? raw.json : text,
    json: parsed ? raw.json : null,
    text,
  };
}

module.exports = { invoke, ainvoke: invoke };
