// A URL shortener on the function's KV.
//   POST / {"url": "https://..."}   201 {code, short}: a new code (or 200 with the code this URL has already)
//   GET /CODE                       302 to the URL (404 when unknown); each visit is counted
//   GET /CODE/stats                 {code, url, visits}

const crypto = require('node:crypto');
const { kv } = require('orva');

const ALPHABET = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';

function newCode(length = 7) {
  const bytes = crypto.randomBytes(length);
  return Array.from(bytes, (b) => ALPHABET[b % ALPHABET.length]).join('');
}

function reply(statusCode, body, headers = {}) {
  return { statusCode, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

async function shorten(event, context) {
  let url;
  try {
    url = new URL(JSON.parse(event.body || '{}').url);
  } catch (err) {
    return reply(422, { error: 'send {"url": "https://..."} with an absolute http(s) URL' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return reply(422, { error: 'only http and https URLs can be shortened' });
  }
  const target = url.toString();
  const byUrl = `url/${crypto.createHash('sha256').update(target).digest('hex')}`;
  const known = await kv.get(byUrl);
  const base = `/fn/${context.functionName}`;
  if (known) return reply(200, { code: known, short: `${base}/${known}`, url: target });
  for (let i = 0; i < 5; i++) {
    const code = newCode();
    const { ok } = await kv.cas(`code/${code}`, target, 0); // 0: only if no other URL has this code
    if (ok) {
      await kv.put(byUrl, code);
      return reply(201, { code, short: `${base}/${code}`, url: target });
    }
  }
  return reply(503, { error: 'no free code found, try again' });
}

exports.handler = async (event, context) => {
  const [code, extra] = event.path.replace(/^\/+|\/+$/g, '').split('/');
  if (event.method === 'POST' && !code) return shorten(event, context);
  if (event.method !== 'GET' || !code) return reply(400, { error: 'POST / {"url": ...} or GET /CODE' });
  const target = await kv.get(`code/${code}`);
  if (target === null) return reply(404, { error: `no short URL ${code}` });
  if (extra === 'stats') return { code, url: target, visits: await kv.get(`visits/${code}`, 0) };
  await kv.incr(`visits/${code}`);
  return { statusCode: 302, headers: { location: target }, body: '' };
};
