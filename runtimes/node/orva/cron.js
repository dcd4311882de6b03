// orva.cron: this function's own schedules (docs/SDK.md, Cron). Every call returns a Promise and goes to orvad
// over the worker's own channel; orvad acts on the calling function's schedules only. Schedules are kept by
// name: upsert creates the name or changes it (options left out keep their value).
//
//   const { cron } = require("orva");
//   await cron.upsert("nightly", "30 2 * * *", { timezone: "Europe/Berlin", payload: { report: "daily" } });
//   const schedules = await cron.list();          // [{ id, name, expression, next_run_at, ... }]
//   await cron.delete("nightly");                  // true; false when there was none
//
// Each run is a job: the function gets `payload` as the event's JSON body, with headers
// `x-orva-trigger: cron` and `x-orva-cron-id: <schedule id>`. Failures reject with an OrvaError
// (.code, .message, .hint), e.g. VALIDATION for a bad expression or timezone.
"use strict";

const channel = require("./_channel.js");

// upsert(name, expression?, { timezone, payload, enabled, catchUp | catch_up }) -> the schedule (created: new or not)
// upsert({ name, expression, timezone, payload, enabled, catchUp }) works too.
async function upsert(name, expression, options = {}) {
  if (name && typeof name === "object") {
    options = name;
    ({ name, expression } = options);
  } else if (expression && typeof expression === "object") {
    options = expression;
    expression = options.expression;
  }
  const args = { name };
  if (expression !== undefined) args.expression = expression;
  for (const [key, value] of [
    ["timezone", options.timezone],
    ["payload", options.payload],
    ["enabled", options.enabled],
    ["catch_up", options.catchUp !== undefined ? options.catchUp : options.catch_up],
  ]) {
    if (value !== undefined) args[key] = value;
  }
  return channel.call("cron.upsert", args);
}

// This function's schedules, newest first.
async function list() {
  return (await channel.call("cron.list", {})).schedules;
}

// Delete schedule `name`; whether it existed (runs already enqueued still run).
async function del(name) {
  return Boolean((await channel.call("cron.delete", { name })).deleted);
}

module.exports = { upsert, list, delete: del, remove: del };
