// A Stripe webhook receiver: checks the Stripe-Signature header (t=TIMESTAMP,v1=HMAC-SHA256 of
// "TIMESTAMP.BODY" with the endpoint's signing secret) and refuses with 401 a wrong signature or one older
// than five minutes (a replay). An event id seen before is acknowledged again without being handled twice.
//
// Set the endpoint's signing secret (whsec_...) from the Stripe dashboard:
//   orva secrets set NAME STRIPE_WEBHOOK_SECRET
// Endpoint URL: https://YOUR-ORVA/fn/NAME

const crypto = require('node:crypto');
const { kv, log } = require('orva');

const TOLERANCE_S = 300;

function reply(statusCode, body) {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

function verify(header, payload, secret, nowS) {
  const parts = {};
  for (const item of (header || '').split(',')) {
    const [key, value] = item.split('=', 2);
    if (key && value) (parts[key.trim()] = parts[key.trim()] || []).push(value.trim());
  }
  const t = Number((parts.t || [])[0]);
  if (!Number.isInteger(t)) return 'no timestamp in Stripe-Signature';
  if (Math.abs(nowS - t) > TOLERANCE_S) return 'the signature is too old (or from the future)';
  const expected = crypto.createHmac('sha256', secret).update(`${t}.`).update(payload).digest();
  const match = (parts.v1 || []).some((hex) => {
    const given = Buffer.from(hex, 'hex');
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
  return match ? null : 'no v1 signature matches';
}

exports.handler = async (event) => {
  const secret = process.env.STRIPE_WEBHOOK_SECRET;
  if (!secret) return reply(500, { error: 'STRIPE_WEBHOOK_SECRET is not set: orva secrets set NAME STRIPE_WEBHOOK_SECRET' });
  const payload = Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  const problem = verify(event.headers['stripe-signature'], payload, secret, Math.floor(Date.now() / 1000));
  if (problem) {
    log.warn('refused', { problem });
    return reply(401, { error: problem });
  }
  const stripeEvent = JSON.parse(payload.toString('utf8'));
  // at most once per event id for a day: Stripe retries deliveries it did not see answered
  const first = await kv.cas(`event/${stripeEvent.id}`, stripeEvent.type, 0, { ttlS: 86400 });
  if (!first.ok) return { received: true, id: stripeEvent.id, duplicate: true };
  const object = (stripeEvent.data && stripeEvent.data.object) || {};
  switch (stripeEvent.type) {
    case 'payment_intent.succeeded':
      log.info('payment succeeded', { id: object.id, amount: object.amount, currency: object.currency });
      break;
    case 'checkout.session.completed':
      log.info('checkout completed', { id: object.id, customer: object.customer });
      break;
    default:
      log.info('unhandled event type', { type: stripeEvent.type });
  }
  return { received: true, id: stripeEvent.id, type: stripeEvent.type };
};
