// orva: the Orva platform SDK for Node handlers (docs/SDK.md), shipped with the adapter: require('orva')
// and import ... from 'orva' work in every Node worker without installing anything. Each call travels to
// orvad over the worker's own pipes (no network, no token). Namespaces load when first used.
//   const { kv, jobs, cron, trace, log, invoke, OrvaError } = require('orva');
'use strict';

const channel = require('./_channel.js');

const NAMESPACES = { kv: './kv.js', jobs: './jobs.js', cron: './cron.js', trace: './trace.js', log: './log.js' };

// a namespace whose file this SDK does not have: fails when used, not when orva is loaded
function missing(name, err) {
  return new Proxy({}, {
    get(target, prop) {
      if (prop === 'then' || typeof prop === 'symbol') return undefined;
      throw new channel.OrvaError('UNKNOWN_OPERATION', `orva.${name} is not available in this worker's SDK (${err.message})`,
        'see docs/SDK.md for the namespaces');
    },
  });
}

function load(name, file) {
  try {
    return require(file);
  } catch (err) {
    if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(file.slice(2))) return missing(name, err);
    throw err;
  }
}

const api = { OrvaError: channel.OrvaError, call: channel.call, stream: channel.stream, context: channel.context };
for (const [name, file] of Object.entries(NAMESPACES)) {
  let value;
  Object.defineProperty(api, name, { enumerable: true, get() { return value || (value = load(name, file)); } });
}
for (const name of ['invoke', 'ainvoke']) {
  Object.defineProperty(api, name, {
    enumerable: true,
    get() {
      const mod = load('invoke', './invoke.js');
      return typeof mod[name] === 'function' ? mod[name] : (typeof mod.invoke === 'function' ? mod.invoke : mod);
    },
  });
}
module.exports = api;
// the names ES-module imports see (import { kv } from 'orva'): Node's CommonJS lexer reads this line
0 && (module.exports = { OrvaError, call, stream, context, kv, jobs, cron, trace, log, invoke, ainvoke });
