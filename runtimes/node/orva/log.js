// orva.log: structured lines in the request's captured logs (docs/SDK.md, Logs).
//   const { log } = require('orva');
//   log.info('order stored', { orderId: 42 });   // {"level":"info","msg":"order stored","time":...,"orderId":42}
// Outside a request the line goes to the worker's stderr, as console.log does.
'use strict';

function write(level, msg, fields) {
  const record = { level: String(level), msg: String(msg), time: Math.round(Date.now()) / 1000 };
  if (fields && typeof fields === 'object') {
    for (const [k, v] of Object.entries(fields)) if (!(k in record)) record[k] = v;
  }
  let line;
  try { line = JSON.stringify(record, (k, v) => (typeof v === 'bigint' ? String(v) : v)); } catch (e) {
    line = JSON.stringify({ level: record.level, msg: record.msg, time: record.time, error: `fields not JSON: ${e.message}` });
  }
  process.stderr.write(line + '\n');
}

module.exports = {
  write,
  debug: (msg, fields) => write('debug', msg, fields),
  info: (msg, fields) => write('info', msg, fields),
  warn: (msg, fields) => write('warn', msg, fields),
  warning: (msg, fields) => write('warn', msg, fields),
  error: (msg, fields) => write('error', msg, fields),
};
