// orva.kv: this function's own key-value state (docs/SDK.md, KV). Every call returns a Promise and goes
// to orvad over the worker's own channel; orvad acts on the calling function's namespace only.
//
//   const { kv } = require("orva");
//   await kv.put("visits", 0);
//   const n = await kv.incr("visits");            // 1
//   const e = await kv.getEntry("visits");        // { value: 1, version, expiresAt }
//   const { ok, version } = await kv.cas("visits", 5, e.version);
//
// Values are JSON or a Buffer/Uint8Array (bytes), at most 1 MiB each. Failures reject with an OrvaError
// (.code, .message, .hint).
"use strict";

const channel = require("./_channel.js");

function toWire(value) {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  }
  if (value === undefined) return null;
  return value;
}

function fromWire(value) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$bytes" && typeof value.$bytes === "string") {
      return Buffer.from(value.$bytes, "base64");
    }
  }
  return value;
}

function opt(args, more) {
  for (const [k, v] of Object.entries(more)) if (v !== undefined && v !== null) args[k] = v;
  return args;
}

function entry(raw) {
  if (raw === null || raw === undefined) return null;
  return { value: fromWire(raw.value), version: raw.version, expiresAt: raw.expires_at };
}

// The value at key, or `fallback` (default null) when it is absent or expired.
async function get(key, fallback = null) {
  const e = await getEntry(key);
  return e === null ? fallback : e.value;
}

// { value, version, expiresAt } (version: for cas), or null.
async function getEntry(key) {
  return entry(await channel.call("kv.get", { key }));
}

// Set key (expiring after ttlS seconds if given; ttlSeconds: the same, Go Orva's name); its new version.
async function put(key, value, { ttlS, ttl_s, ttlSeconds } = {}) {
  return (await channel.call("kv.put", opt({ key, value: toWire(value) }, { ttl_s: ttlS ?? ttl_s ?? ttlSeconds }))).version;
}

// Delete key; whether it existed (a missing key is no error).
async function del(key) {
  return (await channel.call("kv.delete", { key })).deleted;
}

// One page: an Array of the key names (Go Orva's shape) with .nextCursor (pass it back as cursor for the
// next page; null: the last page) and .entries ([{ key, type, size, version, expires_at, ... }]).
async function list({ prefix = "", cursor, limit = 100 } = {}) {
  const raw = await channel.call("kv.list", opt({ prefix, limit }, { cursor }));
  const page = raw.keys.map((e) => e.key);
  page.nextCursor = raw.next_cursor ?? null;
  page.entries = raw.keys;
  return page;
}

// { key: value } of the keys that exist (at most 100 keys).
async function getMany(keys) {
  const raw = await channel.call("kv.get_many", { keys: [...keys] });
  const out = {};
  for (const [k, e] of Object.entries(raw.entries)) out[k] = fromWire(e.value);
  return out;
}

// Set every key of `items` at once (all or none; at most 100); { key: version }.
async function putMany(items, { ttlS, ttl_s, ttlSeconds } = {}) {
  const wire = {};
  for (const [k, v] of Object.entries(items)) wire[k] = toWire(v);
  return (await channel.call("kv.put_many", opt({ items: wire }, { ttl_s: ttlS ?? ttl_s ?? ttlSeconds }))).versions;
}

// Delete the keys (at most 100); how many existed.
async function deleteMany(keys) {
  return (await channel.call("kv.delete_many", { keys: [...keys] })).deleted;
}

// Add `by` to the integer at key (absent: 0) atomically; the new value. The expiry stays unless ttlS is given.
async function incr(key, by = 1, { ttlS, ttl_s, ttlSeconds } = {}) {
  return (await channel.call("kv.incr", opt({ key, by }, { ttl_s: ttlS ?? ttl_s ?? ttlSeconds }))).value;
}

// Set key only if its version is `version` (0 or null: only if absent): { ok, version }.
async function cas(key, value, version, { ttlS, ttl_s, ttlSeconds } = {}) {
  const raw = await channel.call(
    "kv.cas",
    opt({ key, value: toWire(value), version: version ?? 0 }, { ttl_s: ttlS ?? ttl_s ?? ttlSeconds }),
  );
  return { ok: raw.ok, version: raw.version };
}

module.exports = {
  get,
  getEntry,
  put,
  delete: del,
  del,
  list,
  getMany,
  putMany,
  deleteMany,
  incr,
  cas,
  // the Python SDK's names, for code shared between the runtimes
  get_entry: getEntry,
  get_many: getMany,
  put_many: putMany,
  delete_many: deleteMany,
};
