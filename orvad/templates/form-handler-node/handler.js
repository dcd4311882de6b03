// A contact form: GET / serves the form, POST / takes it (form-encoded from a browser, or JSON), checks the
// fields, drops bots that fill the hidden "website" field, and keeps each submission in the function's KV
// for 90 days (read them on the function's KV tab, or `orva kv list NAME --prefix submission/`).
// A browser is sent on to a thank-you page (303); a JSON client gets 201 with the stored key.

const crypto = require('node:crypto');
const { kv, log } = require('orva');

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function page(body, status = 200) {
  return {
    statusCode: status,
    headers: { 'content-type': 'text/html; charset=utf-8' },
    body: `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Contact</title></head><body>${body}</body></html>\n`,
  };
}

const FORM = `<h1>Contact us</h1>
<form method="post">
  <p><label>Name <input name="name" required maxlength="100"></label></p>
  <p><label>E-mail <input name="email" type="email" required maxlength="200"></label></p>
  <p><label>Message <textarea name="message" required maxlength="5000"></textarea></label></p>
  <p style="display:none"><label>Website <input name="website" tabindex="-1" autocomplete="off"></label></p>
  <button>Send</button>
</form>`;

function fieldsOf(event) {
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  if ((event.headers['content-type'] || '').startsWith('application/json')) return JSON.parse(text || '{}');
  return Object.fromEntries(new URLSearchParams(text));
}

function problems(f) {
  const found = [];
  if (typeof f.name !== 'string' || !f.name.trim() || f.name.length > 100) found.push('name: 1 to 100 characters');
  if (typeof f.email !== 'string' || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(f.email)) found.push('email: an e-mail address');
  if (typeof f.message !== 'string' || !f.message.trim() || f.message.length > 5000) found.push('message: 1 to 5000 characters');
  return found;
}

exports.handler = async (event) => {
  const fromBrowser = !(event.headers['content-type'] || '').startsWith('application/json');
  if (event.method === 'GET') {
    return event.query.sent ? page('<h1>Thank you!</h1><p>We got your message.</p>') : page(FORM);
  }
  if (event.method !== 'POST') return { statusCode: 405, body: { error: 'GET the form or POST it' } };
  let fields;
  try {
    fields = fieldsOf(event);
  } catch (err) {
    return { statusCode: 400, body: { error: 'the body is not JSON' } };
  }
  if (fields.website) {
    log.info('bot submission dropped');
    return fromBrowser ? { statusCode: 303, headers: { location: '?sent=1' }, body: '' } : { statusCode: 202, body: {} };
  }
  const found = problems(fields);
  if (found.length > 0) {
    if (fromBrowser) return page(`<h1>Please fix</h1><ul>${found.map((p) => `<li>${escape(p)}</li>`).join('')}</ul>${FORM}`, 422);
    return { statusCode: 422, body: { error: 'invalid fields', problems: found } };
  }
  const key = `submission/${new Date().toISOString()}-${crypto.randomBytes(4).toString('hex')}`;
  const record = { name: fields.name.trim(), email: fields.email.trim(), message: fields.message, ip: event.requestContext.sourceIp };
  await kv.put(key, record, { ttlS: 90 * 86400 });
  log.info('submission stored', { key });
  if (fromBrowser) return { statusCode: 303, headers: { location: '?sent=1' }, body: '' };
  return { statusCode: 201, body: { stored: key } };
};
