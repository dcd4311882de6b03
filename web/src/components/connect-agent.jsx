// "Connect an agent": the MCP client configuration of one channel (GET channels/:id/client-config), as
// snippets to copy for Claude Desktop, Cursor and mcp-remote. orvad never sends the token: the snippets
// read it from ORVA_CHANNEL_TOKEN, and the token the page just showed (create, rotate) is filled in here.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { CopyValue } from "./copy.jsx";
import { ErrorBanner, Loading, Tabs, useAsync } from "./ui.jsx";

const CLIENTS = [
  {
    id: "claude_desktop",
    label: "Claude Desktop",
    where: (
      <>
        Add the entry under <code>mcpServers</code> in <code>claude_desktop_config.json</code> (Settings › Developer ›
        Edit Config; macOS: <code>~/Library/Application Support/Claude/</code>, Windows: <code>%APPDATA%\Claude\</code>
        ), then restart Claude Desktop. It runs <code>npx mcp-remote</code>, so Node.js must be installed.
      </>
    ),
  },
  {
    id: "cursor",
    label: "Cursor",
    where: (
      <>
        Add the entry under <code>mcpServers</code> in <code>~/.cursor/mcp.json</code> (or <code>.cursor/mcp.json</code>{" "}
        in a project). Cursor connects to the URL directly.
      </>
    ),
  },
  {
    id: "mcp_remote",
    label: "Other clients (mcp-remote)",
    where: (
      <>
        For a client that only starts local (stdio) servers: use this command line as its command, or run it in a
        terminal to try the connection.
      </>
    ),
  },
];

// The client-config answer with `token` where each snippet reads the token variable (as `orva mcp config --token`).
export function fillToken(config, token) {
  if (!token) return config;
  const v = config.token_placeholder;
  const out = JSON.parse(JSON.stringify(config));
  for (const server of Object.values(out.claude_desktop.mcpServers)) {
    if (server.env && v in server.env) server.env[v] = token;
  }
  for (const server of Object.values(out.cursor.mcpServers)) {
    for (const [k, h] of Object.entries(server.headers || {})) server.headers[k] = h.replaceAll(`\${env:${v}}`, token);
  }
  out.mcp_remote = out.mcp_remote.replaceAll(`\${${v}}`, token);
  return out;
}

function text(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

export function ConnectAgent({ channel, token }) {
  const config = useAsync(() => api.get(`channels/${encodeURIComponent(channel.id)}/client-config`), [channel.id]);
  const [client, setClient] = useState("claude_desktop");
  const chosen = CLIENTS.find((c) => c.id === client);
  const filled = config.data && fillToken(config.data, token);
  return (
    <section class="connect-agent" aria-label="Connect an agent">
      <h2>Connect an agent</h2>
      <p class="muted">
        An MCP client given this channel's token sees its {channel.function_count} tool(s) at{" "}
        {config.data ? <code>{config.data.url}</code> : "/mcp"} and nothing else.
      </p>
      <ErrorBanner error={config.error} />
      {!filled ? (
        <Loading />
      ) : (
        <>
          <Tabs tabs={CLIENTS} active={client} onChange={setClient} />
          <p class="muted">{chosen.where}</p>
          <pre class="log snippet" data-testid="snippet">
            {text(filled[client])}
          </pre>
          <div class="actions left">
            <CopyValue key={client} text={text(filled[client])} what={`${chosen.label} configuration`} label="Copy" />
          </div>
          {token ? (
            <p class="muted" data-testid="token-filled">
              The token you were just shown is filled in. Keep this configuration private: anyone holding the token can
              call these tools.
            </p>
          ) : (
            <p class="muted" data-testid="token-missing">
              The token is not in these snippets (Orva does not keep it): put it where they name{" "}
              <code>{config.data.token_placeholder}</code>, or rotate the token to get a new one filled in here.
            </p>
          )}
          <p class="muted">
            claude.ai and other remote connectors sign in with OAuth instead of this token: add{" "}
            <code>{config.data.url}</code> as a custom connector and approve it; it then appears under Settings ›
            Connected apps.
          </p>
        </>
      )}
    </section>
  );
}
