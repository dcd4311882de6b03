// The SDK's channel to orvad (runtimes/PROTOCOL.md, "SDK calls"): call(op, args) -> Promise, and
// stream(op, args) -> an async iterator for streamed results. A call is a `call` frame on the worker's
// frame channel tagged with the request it belongs to, found through the adapter's AsyncLocalStorage;
// orvad answers with `result` frames, which the adapter hands to onResult.
'use strict';

const CREDIT_EVERY = 8;  // streamed results: chunks taken before the credit frame that lets orvad send more

class OrvaError extends Error {
  // code (e.g. KV_QUOTA_EXCEEDED, TIMEOUT), message, hint, status (the HTTP status orvad would answer
  // with: 404 not found, 504 timeout, ...), details
  constructor(code, message, hint, status, details) {
    super(`${code}: ${message}`);
    this.name = 'OrvaError';
    this.code = code;
    this.hint = hint === undefined ? null : hint;
    this.status = status === undefined ? null : status;
    this.details = details === undefined ? null : details;
    Object.defineProperty(this, 'message', { value: message, writable: true, configurable: true });
  }
}

function errorOf(body) {
  const b = body && typeof body === 'object' ? body : {};
  return new OrvaError(String(b.code || 'INTERNAL'), String(b.message || 'the call failed'), b.hint, b.status, b.details);
}

const host = globalThis[Symbol.for('orva.adapter')] || null;
const slots = new Map();  // "<request id>:<call id>" -> slot
let nextCall = 1;

if (host) {
  host.onResult = (frame) => {
    const slot = slots.get(`${frame.id}:${frame.call}`);
    if (slot) slot.push(frame);
  };
}

class Slot {
  constructor() { this.frames = []; this.waiter = null; }
  push(frame) {
    if (this.waiter) { const w = this.waiter; this.waiter = null; w(frame); } else this.frames.push(frame);
  }
  next() {
    if (this.frames.length) return Promise.resolve(this.frames.shift());
    return new Promise((resolve) => { this.waiter = resolve; });
  }
}

function write(message) {
  host.write(Buffer.from(JSON.stringify(message), 'utf8'));
}

function start(op, args) {
  if (!host) {
    throw new OrvaError('NOT_IN_WORKER', `${op}: orva calls work only inside an Orva worker`,
      'run the function on orvad (orva deploy, then orva invoke)');
  }
  const rid = host.requestId();
  if (rid === null || rid === undefined) {
    throw new OrvaError('NO_REQUEST', `${op}: orva calls work only while a request is being served`,
      'make SDK calls from the handler (or code it runs), not at module load');
  }
  if (args === undefined || args === null) args = {};
  if (typeof args !== 'object' || Array.isArray(args)) throw new TypeError(`${op}: the arguments must be an object`);
  const call = nextCall++;
  let payload;
  try {
    payload = Buffer.from(JSON.stringify({ type: 'call', id: rid, call, op, args }), 'utf8');
  } catch (e) {
    throw new OrvaError('VALIDATION', `${op}: the arguments are not JSON: ${e.message}`, 'pass JSON values');
  }
  if (payload.length > host.maxFrame) {
    throw new OrvaError('PAYLOAD_TOO_LARGE', `${op}: the call (${payload.length} bytes) exceeds the ${host.maxFrame}-byte frame limit`,
      'send less at once', 413);
  }
  const key = `${rid}:${call}`;
  const slot = new Slot();
  slots.set(key, slot);
  try { host.write(payload); } catch (e) { slots.delete(key); throw e; }
  return { key, rid, call, slot };
}

// Run SDK operation `op` in orvad: a Promise of its JSON value (a streamed result: the array of its
// chunks); rejects with an OrvaError.
async function call(op, args) {
  const c = start(op, args);
  let chunks = null;
  try {
    for (;;) {
      const frame = await c.slot.next();
      if (frame.more) {
        (chunks || (chunks = [])).push(frame.value);
        write({ type: 'credit', id: c.rid, call: c.call, n: 1 });
        continue;
      }
      if (!frame.ok) throw errorOf(frame.error);
      return chunks !== null ? chunks : (frame.value === undefined ? null : frame.value);
    }
  } finally {
    slots.delete(c.key);
  }
}

// A streamed SDK result as an async iterator of its chunks; leaving the loop early cancels the stream.
function stream(op, args) {
  const c = start(op, args);
  let done = false, taken = 0;
  const finish = () => { done = true; slots.delete(c.key); };
  return {
    [Symbol.asyncIterator]() { return this; },
    async next() {
      if (done) return { done: true, value: undefined };
      if (taken >= CREDIT_EVERY) { write({ type: 'credit', id: c.rid, call: c.call, n: taken }); taken = 0; }
      const frame = await c.slot.next();
      if (frame.more) { taken += 1; return { done: false, value: frame.value }; }
      finish();
      if (!frame.ok) throw errorOf(frame.error);
      return { done: true, value: undefined };
    },
    async return() {
      if (!done) {
        finish();
        try { write({ type: 'cancel', id: c.rid, call: c.call }); } catch (e) { /* the worker is stopping */ }
      }
      return { done: true, value: undefined };
    },
  };
}

// Who orvad says is calling: {functionId, functionName, executionId, traceId, spanId, depth, remainingMs}
function context() { return call('context', {}); }

module.exports = { OrvaError, call, stream, context };
