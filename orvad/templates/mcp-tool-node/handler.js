// An MCP-friendly tool: its input_schema tells an agent (through an MCP channel, /mcp) what arguments to
// send; they arrive here as the JSON body of a POST, already checked against the schema by orvad.
// The reply is JSON, which the agent gets as the tool's structured result.
//
// Add the function to a channel (dashboard: Channels, or POST /api/v1/channels) and the agent sees a tool
// named after it. Over HTTP:  curl -s .../fn/NAME -d '{"text": "Hello there. How are you?"}'

function stats(text, top) {
  const words = text.toLowerCase().match(/[\p{L}\p{N}']+/gu) || [];
  const counts = new Map();
  for (const word of words) counts.set(word, (counts.get(word) || 0) + 1);
  const frequent = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, top)
    .map(([word, count]) => ({ word, count }));
  const sentences = text.split(/[.!?]+/).filter((s) => s.trim()).length;
  return {
    characters: [...text].length,
    words: words.length,
    sentences,
    lines: text === '' ? 0 : text.split('\n').length,
    reading_seconds: Math.ceil((words.length / 230) * 60),
    top_words: frequent,
  };
}

exports.handler = async (event) => {
  let args;
  try {
    args = JSON.parse(event.body || '{}');
  } catch (err) {
    return { statusCode: 400, body: { error: 'send a JSON object: {"text": "...", "top": 5}' } };
  }
  // orvad checks the schema for MCP calls; a plain HTTP call is checked here
  if (typeof args.text !== 'string') return { statusCode: 422, body: { error: 'text (a string) is required' } };
  const top = Number.isInteger(args.top) && args.top >= 1 && args.top <= 50 ? args.top : 5;
  return stats(args.text, top);
};
