// A JSON API with input validation: POST /orders checks the body field by field and answers 201 with the
// order, or 422 with every problem found (field, message); GET / describes the API.
//
// Try it:  curl -s .../fn/NAME/orders -H 'Content-Type: application/json' \
//            -d '{"email": "ada@example.com", "sku": "TEA-01", "quantity": 2}'

const PRICES = { 'TEA-01': 450, 'TEA-02': 700, 'MUG-01': 1200 }; // cents; a real API would read a store

function validate(body) {
  const errors = [];
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return [{ field: '', message: 'the body must be a JSON object' }];
  }
  const known = new Set(['email', 'sku', 'quantity', 'note']);
  for (const key of Object.keys(body)) {
    if (!known.has(key)) errors.push({ field: key, message: 'unknown field' });
  }
  if (typeof body.email !== 'string' || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(body.email)) {
    errors.push({ field: 'email', message: 'an e-mail address is required' });
  }
  if (typeof body.sku !== 'string' || !(body.sku in PRICES)) {
    errors.push({ field: 'sku', message: `one of ${Object.keys(PRICES).join(', ')}` });
  }
  if (!Number.isInteger(body.quantity) || body.quantity < 1 || body.quantity > 100) {
    errors.push({ field: 'quantity', message: 'a whole number from 1 to 100' });
  }
  if (body.note !== undefined && (typeof body.note !== 'string' || body.note.length > 500)) {
    errors.push({ field: 'note', message: 'text of at most 500 characters' });
  }
  return errors;
}

function json(statusCode, body) {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

exports.handler = async (event, context) => {
  if (event.method === 'GET' && event.path === '/') {
    return { endpoints: { 'POST /orders': { email: 'string', sku: Object.keys(PRICES), quantity: '1..100' } } };
  }
  if (event.path !== '/orders') return json(404, { error: { code: 'NOT_FOUND', message: `no route ${event.path}` } });
  if (event.method !== 'POST') return json(405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'use POST' } });
  let body;
  try {
    body = JSON.parse(event.body || '');
  } catch (err) {
    return json(400, { error: { code: 'BAD_JSON', message: 'the body is not JSON' } });
  }
  const errors = validate(body);
  if (errors.length > 0) {
    return json(422, { error: { code: 'VALIDATION', message: `${errors.length} invalid field(s)`, errors } });
  }
  const order = {
    id: context.requestId,
    email: body.email.toLowerCase(),
    sku: body.sku,
    quantity: body.quantity,
    total_cents: PRICES[body.sku] * body.quantity,
  };
  console.log(`order ${order.id}: ${order.quantity} x ${order.sku}`);
  return json(201, order);
};
