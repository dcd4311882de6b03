// An HTML page: answers text/html built from a template string, with every value from the request escaped
// (a name such as <script> shows as text, never runs).
//
//   GET /?name=Ada

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

exports.handler = async (event, context) => {
  const name = (event.query.name || 'world').slice(0, 100);
  const now = new Date().toISOString();
  const html = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Hello, ${escape(name)}</title>
  <style>
    body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem; color: #222; }
    code { background: #f3f3f3; padding: 0.1rem 0.3rem; border-radius: 3px; }
  </style>
</head>
<body>
  <h1>Hello, ${escape(name)}!</h1>
  <p>This page was rendered by <code>${escape(context.functionName)}</code> at ${escape(now)}.</p>
  <form method="get"><label>Your name <input name="name" value="${escape(name)}"></label> <button>Greet</button></form>
</body>
</html>
`;
  return { statusCode: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: html };
};
