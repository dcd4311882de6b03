// The assistant: conversations with an AI model that can use Orva's operator tools (docs/ASSISTANT.md). The
// list of conversations (rename, archive, delete) and one conversation's chat: the answer streams in (POST
// ai/chat read as SSE), thinking folded away, each tool call a card with its arguments and result (Approve or
// Reject when it waits for approval), regenerate, edit-and-rerun of a message, cancel, tokens per message and
// per conversation. The turn runs in orvad: leaving the page stops only the reading, and coming back to a
// conversation whose turn still runs follows it again.
import { useEffect, useRef, useState } from "preact/hooks";
import { allPages, api, streamRequest } from "../api.js";
import {
  ago,
  ConfirmButton,
  Dialog,
  ErrorBanner,
  Field,
  Loading,
  Notice,
  useAction,
  useAsync,
} from "../components/ui.jsx";
import { navigate } from "../router.js";

const enc = encodeURIComponent;
const LIVE = new Set(["streaming", "running", "pending"]);

// "1,234 in · 56 out" from a record's usage ({input_tokens, output_tokens})
function tokens(usage) {
  const u = usage || {};
  return `${(u.input_tokens || 0).toLocaleString()} in · ${(u.output_tokens || 0).toLocaleString()} out`;
}

function hasTokens(usage) {
  return Boolean(usage && (usage.input_tokens || usage.output_tokens));
}

// A conversation's messages with their tool calls attached, whichever way orvad nests them: in each message
// (`tool_calls`) or beside them (`conversation.tool_calls` with message_id). Tool messages (the results sent
// back to the model) are shown in their call's card, not on their own.
function timeline(conv) {
  const loose = conv.tool_calls || [];
  return (conv.messages || [])
    .filter((m) => m.role !== "tool")
    .map((m) => ({
      ...m,
      content: m.content || "",
      thinking: m.thinking || "",
      tool_calls: (m.tool_calls || loose.filter((t) => t.message_id === m.id)).map(card),
    }));
}

function card(t) {
  return { ...t, arguments: t.arguments ?? {}, result: t.result ?? null };
}

function isRunning(msgs) {
  return msgs.some((m) => LIVE.has(m.status));
}

export function AssistantView({ params }) {
  const id = params.id || null;
  const [showArchived, setShowArchived] = useState(false);
  const list = useAsync(() => allPages("ai/conversations", "conversations"), []); // every one, page by page
  const providers = useAsync(() => api.get("ai/providers"), []);
  const all = (list.data && (list.data.conversations || list.data)) || [];
  const shown = all.filter((c) => showArchived || !c.archived || c.id === id);
  const noProvider = providers.data && (providers.data.providers || providers.data).length === 0;

  return (
    <section class="assistant">
      <h1>Assistant</h1>
      <ErrorBanner error={list.error} />
      {noProvider && (
        <Notice kind="warn">
          <div data-testid="no-provider">
            No AI provider yet: add one under <a href="#/settings">Settings › AI providers</a> (an Anthropic or
            OpenAI-compatible endpoint, a local Ollama included), then come back.
          </div>
        </Notice>
      )}
      <div class="assistant-grid">
        <nav class="conversations" aria-label="Conversations">
          <button class="primary" onClick={() => navigate("/assistant")} disabled={!id}>
            New conversation
          </button>
          {list.loading && !list.data ? (
            <Loading />
          ) : shown.length === 0 ? (
            <p class="muted empty">No conversations yet.</p>
          ) : (
            <ul>
              {shown.map((c) => (
                <li key={c.id}>
                  <a
                    href={`#/assistant/${enc(c.id)}`}
                    class={c.id === id ? "active" : ""}
                    aria-current={c.id === id ? "page" : undefined}
                  >
                    <span class="title">{c.title || "Untitled"}</span>
                    <span class="muted small">
                      {c.archived ? "archived · " : ""}
                      {ago(c.updated_at)}
                    </span>
                  </a>
                </li>
              ))}
            </ul>
          )}
          <label class="check small">
            <input type="checkbox" checked={showArchived} onChange={(e) => setShowArchived(e.target.checked)} />
            Show archived
          </label>
        </nav>
        <Chat
          key={id || "new"}
          id={id}
          onChanged={list.reload}
          providers={(providers.data && (providers.data.providers || providers.data)) || []}
        />
      </div>
    </section>
  );
}

function Chat({ id, onChanged, providers }) {
  const [conv, setConv] = useState(null); // the conversation's own fields (title, archived, token totals)
  const [msgs, setMsgs] = useState(id ? null : []);
  const [loadError, setLoadError] = useState(null);
  const [streamError, setStreamError] = useState(null);
  const [streaming, setStreaming] = useState(false);
  const [draft, setDraft] = useState("");
  const [renaming, setRenaming] = useState(false);
  const [choice, setChoice] = useState({ provider_id: "", model: "", thinking: "" }); // "" = the default
  const action = useAction();
  const abort = useRef(null);
  const convId = useRef(id);
  const bottom = useRef(null);

  const load = async () => {
    const c = await api.get(`ai/conversations/${enc(convId.current)}`);
    setConv(c);
    return c;
  };

  // Read one streamed turn: each frame updates the timeline as it comes.
  const follow = async (method, path, body, { replay = false, onRefused = null } = {}) => {
    if (abort.current) abort.current.abort();
    const ctl = new AbortController();
    abort.current = ctl;
    setStreaming(true);
    setStreamError(null);
    const patch = (mid, fn) => setMsgs((ms) => (ms || []).map((m) => (m.id === mid ? fn(m) : m)));
    const patchCall = (cid, fn) =>
      setMsgs((ms) =>
        (ms || []).map((m) =>
          m.tool_calls.some((t) => t.id === cid)
            ? { ...m, tool_calls: m.tool_calls.map((t) => (t.id === cid ? fn(t) : t)) }
            : m,
        ),
      );
    const handlers = {
      message_start: (f) => {
        if (f.conversation_id && !convId.current) {
          convId.current = f.conversation_id;
          window.history.replaceState(null, "", `#/assistant/${enc(f.conversation_id)}`);
        }
        setMsgs((ms) => {
          ms = ms || [];
          const fresh = {
            id: f.message_id,
            seq: f.seq,
            role: f.role,
            content: "",
            thinking: "",
            tool_calls: [],
            status: "streaming",
          };
          if (ms.some((m) => m.id === f.message_id)) {
            // a re-attached stream starts from the turn's first frame: rebuild the message from it
            return ms.map((m) => (m.id === f.message_id && m.role !== "user" ? { ...m, ...fresh } : m));
          }
          const pending = ms.findIndex((m) => m.local && m.role === f.role);
          if (pending >= 0) {
            return ms.map((m, i) => (i === pending ? { ...m, id: f.message_id, seq: f.seq, local: false } : m));
          }
          if (f.role === "user") return [...ms, { ...fresh, status: "complete" }];
          return [...ms, fresh];
        });
      },
      delta: (f) => patch(f.message_id, (m) => ({ ...m, content: m.content + f.text })),
      thinking: (f) => patch(f.message_id, (m) => ({ ...m, thinking: m.thinking + f.text })),
      tool_call: (f) =>
        patch(f.message_id, (m) => ({
          ...m,
          tool_calls: [
            ...m.tool_calls.filter((t) => t.id !== f.id),
            card({
              id: f.id,
              name: f.name,
              arguments: f.arguments,
              status: f.needs_approval ? "awaiting_approval" : "running",
            }),
          ],
        })),
      awaiting_approval: (f) => {
        patchCall(f.id, (t) => ({ ...t, status: "awaiting_approval" }));
        setMsgs((ms) => (ms || []).map((m) => (m.status === "streaming" ? { ...m, status: "awaiting_approval" } : m)));
      },
      tool_result: (f) =>
        patchCall(f.id, (t) => ({
          ...t,
          result: f.result,
          is_error: f.is_error,
          status: t.status === "rejected" ? "rejected" : f.is_error ? "error" : "done",
        })),
      message_end: (f) =>
        patch(f.message_id, (m) => ({
          ...m,
          status: m.status === "awaiting_approval" ? m.status : "complete",
          stop_reason: f.stop_reason,
          usage: f.usage,
        })),
      error: (f) => {
        setStreamError(f);
        setMsgs((ms) => (ms || []).map((m) => (LIVE.has(m.status) ? { ...m, status: "error" } : m)));
      },
    };
    try {
      await streamRequest(method, path, body, handlers, { signal: ctl.signal });
    } catch (e) {
      if (!replay || e.status !== 404) setStreamError(e);
      if (e.status >= 400 && onRefused) onRefused();
    } finally {
      if (abort.current === ctl) {
        abort.current = null;
        setStreaming(false);
        if (!id && convId.current) {
          // a new conversation got its id: its own address now (the page loads it from orvad)
          navigate(`/assistant/${enc(convId.current)}`, { replace: true });
          onChanged();
        } else if (!ctl.signal.aborted && convId.current) {
          // what orvad stored is the truth (ids, statuses, token totals)
          try {
            const c = await load();
            const ms = timeline(c);
            setMsgs(ms);
            const last = ms[ms.length - 1];
            if (last && last.error) setStreamError(null); // the message shows it now
          } catch {
            // the stream's view stays
          }
          onChanged();
        }
      }
    }
  };

  useEffect(() => {
    convId.current = id;
    if (!id) return undefined;
    (async () => {
      try {
        const c = await load();
        const ms = timeline(c);
        setMsgs(ms);
        if (c.running || isRunning(ms)) {
          // the turn still runs in orvad: follow it again
          follow("GET", `ai/conversations/${enc(id)}/stream`, undefined, { replay: true });
        }
      } catch (e) {
        setLoadError(e);
      }
    })();
    return () => abort.current && abort.current.abort();
  }, [id]);

  useEffect(() => {
    if (bottom.current && bottom.current.scrollIntoView) bottom.current.scrollIntoView({ block: "end" });
  }, [msgs && msgs.length, streaming]);

  const send = (e) => {
    e.preventDefault();
    const content = draft.trim();
    if (!content || streaming) return;
    setDraft("");
    setMsgs((ms) => [
      ...(ms || []),
      {
        id: `local-${Date.now()}`,
        local: true,
        role: "user",
        content,
        thinking: "",
        tool_calls: [],
        status: "complete",
      },
    ]);
    const body = { content, ...overrides(choice) };
    if (convId.current) body.conversation_id = convId.current;
    follow("POST", "ai/chat", body, {
      onRefused: () => {
        // nothing was stored: the message goes back into the box
        setMsgs((ms) => ms.filter((m) => !m.local));
        setDraft(content);
      },
    });
  };

  const cut = (mid, keep) =>
    setMsgs((ms) => {
      const i = ms.findIndex((m) => m.id === mid);
      return i < 0 ? ms : ms.slice(0, keep ? i + 1 : i);
    });

  const regenerate = () => {
    const lastUser = [...msgs].reverse().find((m) => m.role === "user");
    if (lastUser) cut(lastUser.id, true);
    follow("POST", `ai/conversations/${enc(convId.current)}/regenerate`, overrides(choice));
  };

  const rerun = (m, content) => {
    cut(m.id, true);
    setMsgs((ms) => ms.map((x) => (x.id === m.id ? { ...x, content } : x)));
    follow("POST", `ai/conversations/${enc(convId.current)}/messages/${enc(m.id)}/edit`, { content });
  };

  const decide = (call, verdict) => {
    setMsgs((ms) =>
      ms.map((m) => ({
        ...m,
        status: m.status === "awaiting_approval" ? "streaming" : m.status,
        tool_calls: m.tool_calls.map((t) =>
          t.id === call.id ? { ...t, status: verdict === "approve" ? "running" : "rejected" } : t,
        ),
      })),
    );
    follow("POST", `ai/tool-calls/${enc(call.id)}/${verdict}`, {});
  };

  const deleteFrom = (m) =>
    action.run(async () => {
      await api.del(`ai/conversations/${enc(convId.current)}/messages/${enc(m.id)}`);
      const c = await load();
      setMsgs(timeline(c));
      onChanged();
    });

  const cancel = () => action.run(() => api.post(`ai/conversations/${enc(convId.current)}/cancel`));
  const archive = (archived) =>
    action.run(async () => {
      setConv(await api.patch(`ai/conversations/${enc(convId.current)}`, { archived }));
      onChanged();
    });
  const remove = () =>
    action.run(async () => {
      await api.del(`ai/conversations/${enc(convId.current)}`);
      onChanged();
      navigate("/assistant", { replace: true });
    });

  if (loadError) return <ErrorBanner error={loadError} />;
  if (!msgs) return <Loading what="Loading the conversation" />;
  const running = streaming || isRunning(msgs);
  const waiting = msgs.some((m) => m.tool_calls.some((t) => t.status === "awaiting_approval"));
  const last = msgs[msgs.length - 1];
  return (
    <div class="chat" aria-label="Chat" role="region">
      <header class="chat-head">
        <div>
          <h2>{(conv && conv.title) || (convId.current ? "Untitled" : "New conversation")}</h2>
          {conv && (
            <span class="muted small" data-testid="conversation-tokens">
              {tokens(conv.usage)} tokens in this conversation
              {conv.model ? ` · ${conv.model}` : ""}
            </span>
          )}
        </div>
        {conv && (
          <div class="actions">
            <button onClick={() => setRenaming(true)}>Rename</button>
            <button onClick={() => archive(!conv.archived)}>{conv.archived ? "Unarchive" : "Archive"}</button>
            <ConfirmButton
              label="Delete conversation"
              question={`Delete "${conv.title || "Untitled"}" with all its messages and tool calls?`}
              onConfirm={remove}
            />
          </div>
        )}
      </header>
      <ErrorBanner error={action.error} />
      <div class="messages" aria-live="polite">
        {msgs.length === 0 && (
          <p class="muted empty">
            Ask for what you want built, deployed or fixed ("make a function that resizes images and put it on /thumb").
            The assistant uses Orva's tools; each change waits for your approval unless the approval policy in Settings
            says otherwise.
          </p>
        )}
        {msgs.map((m) => (
          <Message
            key={m.id}
            m={m}
            busy={running}
            onEdit={(content) => rerun(m, content)}
            onDeleteFrom={() => deleteFrom(m)}
            onDecide={decide}
            onRegenerate={!running && !waiting && m === last && m.role === "assistant" ? regenerate : null}
          />
        ))}
        <div ref={bottom} />
      </div>
      {streamError && <StreamError error={streamError} />}
      <form class="composer" onSubmit={send} aria-label="Message the assistant">
        <textarea
          name="message"
          aria-label="Message"
          rows="3"
          placeholder={waiting ? "Approve or reject the tool call above first" : "Message the assistant"}
          value={draft}
          onInput={(e) => setDraft(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send(e);
          }}
        />
        <div class="actions">
          <ChatOptions providers={providers} choice={choice} onChange={setChoice} conv={conv} />
          {running && !waiting && (
            <button type="button" onClick={cancel} disabled={action.busy}>
              Stop
            </button>
          )}
          <button class="primary" type="submit" disabled={running || !draft.trim()}>
            Send
          </button>
        </div>
      </form>
      {renaming && conv && (
        <Rename
          conv={conv}
          onClose={() => setRenaming(false)}
          onSaved={(c) => {
            setConv(c);
            setRenaming(false);
            onChanged();
          }}
        />
      )}
    </div>
  );
}

// An `error` frame or a failed request, in the page's words.
function StreamError({ error }) {
  const e = { ...error, hint: chatHint(error) };
  return <ErrorBanner error={e} />;
}

// What to do about an assistant error, on this page (the API's hints name API paths).
function chatHint(error) {
  const field = error.details && error.details.field;
  if (error.code === "VALIDATION" && (field === "provider_id" || field === "model")) {
    return "Choose a default provider and model under Settings › Assistant (add a provider there first).";
  }
  const hints = {
    PROVIDER_ERROR: "Check the provider under Settings › AI providers (Test connection), then Regenerate.",
    STEP_LIMIT:
      "The reply used all its tool steps: send a message to let the assistant go on, or raise the cap under Settings › Assistant.",
    TURN_RUNNING: "A reply is still being written: wait for it, or press Stop.",
    TURN_INTERRUPTED: "orvad stopped while this reply was being written: press Regenerate to try again.",
    CONFLICT: "The tool call was already decided: the conversation shows what happened.",
  };
  return hints[error.code] || error.hint || "";
}

// What the message overrides for this reply: only what was chosen (else the conversation's, then Settings').
function overrides(choice) {
  const out = {};
  for (const k of ["provider_id", "model", "thinking"]) if (choice[k]) out[k] = choice[k];
  return out;
}

// Provider, model and thinking for the next reply (folded; "default" leaves them to the conversation and Settings).
function ChatOptions({ providers, choice, onChange, conv }) {
  const models = useAsync(
    async () =>
      choice.provider_id ? (await api.get(`ai/providers/${enc(choice.provider_id)}/models`)).models || [] : [],
    [choice.provider_id],
  );
  const names = (models.data || []).map((m) => (typeof m === "string" ? m : m.id));
  const picked = [
    choice.provider_id && "provider",
    choice.model && choice.model,
    choice.thinking && `thinking ${choice.thinking}`,
  ]
    .filter(Boolean)
    .join(", ");
  return (
    <details class="chat-options">
      <summary>{picked ? `This reply: ${picked}` : `Model: ${(conv && conv.model) || "default"}`}</summary>
      <div class="row">
        <label>
          <span class="small muted">Provider</span>
          <select
            name="chat_provider"
            aria-label="Provider for this reply"
            value={choice.provider_id}
            onChange={(e) => onChange({ ...choice, provider_id: e.target.value, model: "" })}
          >
            <option value="">default</option>
            {providers.map((p) => (
              <option key={p.id} value={p.id}>
                {p.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span class="small muted">Model</span>
          <select
            name="chat_model"
            aria-label="Model for this reply"
            value={choice.model}
            onChange={(e) => onChange({ ...choice, model: e.target.value })}
          >
            <option value="">default</option>
            {names.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span class="small muted">Thinking</span>
          <select
            name="chat_thinking"
            aria-label="Thinking for this reply"
            value={choice.thinking}
            onChange={(e) => onChange({ ...choice, thinking: e.target.value })}
          >
            <option value="">default</option>
            {["off", "low", "medium", "high"].map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
      </div>
    </details>
  );
}

function Message({ m, busy, onEdit, onDecide, onRegenerate, onDeleteFrom }) {
  const [editing, setEditing] = useState(null);
  const label = m.role === "user" ? "You" : "Assistant";
  return (
    <article class={`msg ${m.role}`} aria-label={`${label} message`} data-status={m.status}>
      <div class="msg-who muted small">
        {label}
        {m.status && m.status !== "complete" && <Badge status={m.status} />}
      </div>
      {m.thinking && (
        <details class="thinking">
          <summary>Thinking</summary>
          <pre>{m.thinking}</pre>
        </details>
      )}
      {editing !== null ? (
        <form
          class="form"
          aria-label="Edit message"
          onSubmit={(e) => {
            e.preventDefault();
            if (!editing.trim()) return;
            onEdit(editing.trim());
            setEditing(null);
          }}
        >
          <textarea aria-label="Edited message" rows="3" value={editing} onInput={(e) => setEditing(e.target.value)} />
          <div class="actions left">
            <button class="primary" type="submit">
              Save and rerun
            </button>
            <button type="button" onClick={() => setEditing(null)}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        m.content && <Text text={m.content} />
      )}
      {m.tool_calls.map((t) => (
        <ToolCard key={t.id} call={t} onDecide={onDecide} />
      ))}
      {m.status === "streaming" && !m.content && m.tool_calls.length === 0 && <p class="muted">Thinking…</p>}
      {m.error && <StreamError error={typeof m.error === "string" ? safeJson(m.error) : m.error} />}
      <div class="msg-foot muted small">
        {m.role === "assistant" && hasTokens(m.usage) ? (
          <span data-testid="message-tokens">{tokens(m.usage)} tokens</span>
        ) : null}
        {m.role === "user" && !m.local && editing === null && !busy && (
          <button class="link" onClick={() => setEditing(m.content)}>
            Edit and rerun
          </button>
        )}
        {onRegenerate && (
          <button class="link" onClick={onRegenerate}>
            Regenerate
          </button>
        )}
        {m.role === "user" && !m.local && editing === null && !busy && (
          <ConfirmButton
            label="Delete from here"
            class="link"
            question="Delete this message and everything after it (replies and tool calls)? Nothing that ran is undone."
            onConfirm={onDeleteFrom}
          />
        )}
      </div>
    </article>
  );
}

// A status as a badge, in words (awaiting_approval -> "awaiting approval"; a finished call is "done")
function Badge({ status }) {
  const cls = status === "done" ? "succeeded" : status;
  return <span class={`badge ${cls}`}>{status.replaceAll("_", " ")}</span>;
}

function safeJson(text) {
  try {
    const v = JSON.parse(text);
    return (v && v.error) || v;
  } catch {
    return { message: text };
  }
}

// Text with ``` fences shown as code blocks; everything else as written (no HTML from the model is rendered).
function Text({ text }) {
  const parts = text.split(/```[^\n]*\n?/);
  return <div class="msg-text">{parts.map((p, i) => (i % 2 ? <pre key={i}>{p}</pre> : p && <p key={i}>{p}</p>))}</div>;
}

function pretty(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") {
    try {
      return JSON.stringify(JSON.parse(v), null, 2);
    } catch {
      return v;
    }
  }
  return JSON.stringify(v, null, 2);
}

function ToolCard({ call, onDecide }) {
  const waiting = call.status === "awaiting_approval";
  return (
    <div class={`tool-card ${call.status || ""}`} role="group" aria-label={`Tool call ${call.name}`}>
      <div class="tool-head">
        <code>{call.name}</code>
        <Badge status={call.status || "running"} />
      </div>
      <details open={waiting}>
        <summary>Arguments</summary>
        <pre data-testid="tool-arguments">{pretty(call.arguments)}</pre>
      </details>
      {call.result !== null && call.result !== undefined && (
        <details open={call.is_error}>
          <summary>{call.is_error ? "Error" : "Result"}</summary>
          <pre data-testid="tool-result">{pretty(call.result)}</pre>
        </details>
      )}
      {waiting && (
        <div class="actions left">
          <button class="primary" onClick={() => onDecide(call, "approve")}>
            Approve
          </button>
          <button class="danger" onClick={() => onDecide(call, "reject")}>
            Reject
          </button>
        </div>
      )}
    </div>
  );
}

function Rename({ conv, onClose, onSaved }) {
  const [title, setTitle] = useState(conv.title || "");
  const save = useAction();
  const submit = (e) => {
    e.preventDefault();
    save.run(async () => onSaved(await api.patch(`ai/conversations/${enc(conv.id)}`, { title: title.trim() })));
  };
  return (
    <Dialog title="Rename conversation" open onClose={onClose}>
      <form class="form" onSubmit={submit} aria-label="Rename conversation">
        <ErrorBanner error={save.error} />
        <Field label="Title">
          <input name="title" value={title} required maxLength={200} onInput={(e) => setTitle(e.target.value)} />
        </Field>
        <div class="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={save.busy}>
            Save
          </button>
        </div>
      </form>
    </Dialog>
  );
}
