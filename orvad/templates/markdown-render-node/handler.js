// Markdown to HTML with a dependency from npm: `marked`, installed by the build from package.json.
// POST Markdown, get HTML back: a fragment, or a whole page with ?page=1. Raw HTML in the input is shown as
// text, never passed through (the input is escaped before Markdown is parsed).
//
//   curl -s --data-binary @README.md -H 'Content-Type: text/markdown' '.../fn/NAME?page=1'

const { marked } = require('marked');

const escape = (text) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const MAX_BYTES = 1024 * 1024;

exports.handler = async (event) => {
  if (event.method !== 'POST') {
    return { statusCode: 405, body: { error: 'POST Markdown as the body (?page=1 for a whole HTML page)' } };
  }
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  if (Buffer.byteLength(text) > MAX_BYTES) return { statusCode: 413, body: { error: 'at most 1 MiB of Markdown' } };
  const html = marked.parse(escape(text), { gfm: true, breaks: false });
  const title = escape((text.match(/^#\s+(.+)$/m) || [null, 'Document'])[1].trim());
  const body = event.query.page
    ? `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body>\n${html}</body></html>\n`
    : html;
  return { statusCode: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body };
};
