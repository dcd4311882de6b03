// orva.jobs: background invocations, run later by orvad with retries (docs/SDK.md, Jobs). Every call returns
// a Promise. A function enqueues jobs for itself, or for the functions its may_invoke names; it sees only its
// own jobs (the jobs that run it).
//
//   const { jobs } = require("orva");
//   const id = await jobs.enqueue("send-welcome-email", { user: 42 }, { delaySeconds: 10, maxAttempts: 3 });
//   (await jobs.get(id)).status;      // pending | running | failed | succeeded | dead | cancelled
//   (await jobs.list({ status: "dead" })).jobs;
//
// The job's function gets the payload as the JSON body of POST / (event.body), with the headers
// x-orva-trigger: job and x-orva-job-id. Failures reject with an OrvaError (.code, .message, .hint).
"use strict";

const channel = require("./_channel.js");

function pick(options, names) {
  const args = {};
  for (const [camel, snake] of names) {
    const v = options[camel] !== undefined ? options[camel] : options[snake];
    if (v !== undefined && v !== null) args[snake] = v;
  }
  return args;
}

async function enqueue(fn, payload, options = {}) {
  const args = {
    payload: payload === undefined ? null : payload,
    ...pick(options || {}, [
      ["delaySeconds", "delay_seconds"],
      ["scheduledAt", "scheduled_at"],
      ["maxAttempts", "max_attempts"],
      ["idempotencyKey", "idempotency_key"],
      ["idempotencyWindowS", "idempotency_window_s"],
    ]),
  };
  if (fn !== undefined && fn !== null) args.function = fn;
  const job = await channel.call("jobs.enqueue", args);
  return String(job.id);
}

function get(id) {
  return channel.call("jobs.get", { id });
}

function list(options = {}) {
  return channel.call("jobs.list", pick(options || {}, [["status", "status"], ["limit", "limit"], ["cursor", "cursor"]]));
}

module.exports = { enqueue, get, list, aenqueue: enqueue, aget: get, alist: list };
