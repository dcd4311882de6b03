// Fan-out: call several functions at once (function-to-function calls, orva.invoke) and gather their
// replies. A function may call only those its may_invoke setting names; a refused or failed call is
// reported for that target, the others still answer.
//
//   POST / {"targets": ["hello-python", "hello-node"], "payload": {"name": "orva"}}
//   (no targets: FAN_OUT_TARGETS, a comma-separated list)

const { invoke, OrvaError, log } = require('orva');

exports.handler = async (event) => {
  let request = {};
  try {
    request = JSON.parse(event.body || '{}');
  } catch (err) {
    return { statusCode: 400, body: { error: 'send a JSON object: {"targets": [...], "payload": ...}' } };
  }
  const fallback = (process.env.FAN_OUT_TARGETS || '').split(',').map((s) => s.trim()).filter(Boolean);
  const targets = Array.isArray(request.targets) ? request.targets : fallback;
  if (targets.length === 0 || targets.length > 20 || !targets.every((t) => typeof t === 'string')) {
    return { statusCode: 422, body: { error: 'targets: 1 to 20 function names (or set FAN_OUT_TARGETS)' } };
  }
  const started = Date.now();
  const settled = await Promise.all(
    targets.map(async (name) => {
      const t0 = Date.now();
      try {
        const reply = await invoke(name, request.payload === undefined ? {} : request.payload);
        return [name, { ok: reply.status < 400, status: reply.status, body: reply.body, ms: Date.now() - t0 }];
      } catch (err) {
        if (!(err instanceof OrvaError)) throw err;
        log.warn('call failed', { target: name, code: err.code });
        return [name, { ok: false, error: err.code, message: err.message, ms: Date.now() - t0 }];
      }
    }),
  );
  const results = Object.fromEntries(settled);
  return {
    ok: Object.values(results).every((r) => r.ok),
    results,
    ms: Date.now() - started,
  };
};
