// Channels: bundles of functions offered to AI agents as MCP tools at /mcp, behind one token. The list and
// the create form; one channel's page: its tools (which functions, and the description each tool shows
// agents), the token shown once after create or rotate, rotate and delete, and "Connect an agent".
import { useEffect, useMemo, useState } from "preact/hooks";
import { allPages, api } from "../api.js";
import { ConnectAgent } from "../components/connect-agent.jsx";
import { CopyValue } from "../components/copy.jsx";
import {
  ago,
  ConfirmButton,
  Dialog,
  ErrorBanner,
  Field,
  Loading,
  Notice,
  Table,
  useAction,
  useAsync,
} from "../components/ui.jsx";
import { navigate } from "../router.js";

// The token orvad answered a create or rotate with, by channel id: kept in this page's memory only, so the
// channel's page can show it once and fill it into the snippets; forgotten when that page is left.
const freshTokens = new Map();

// As orvad names tools (orvad/services/channels.py tool_name): my-fn -> my_fn
function toolName(name) {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "");
}

function expiry(iso) {
  if (!iso) return "never";
  const when = new Date(iso);
  return when < new Date() ? `expired ${when.toLocaleDateString()}` : when.toLocaleDateString();
}

export function ChannelsView() {
  const list = useAsync(() => allPages("channels", "channels"), []);
  const functions = useAsync(() => allPages("functions", "functions"), []);
  const [form, setForm] = useState({ name: "", description: "", days: "", picked: [] });
  const action = useAction();

  const create = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { name: form.name.trim(), function_ids: form.picked };
      if (form.description.trim()) body.description = form.description.trim();
      if (form.days) body.expires_in_days = Number(form.days);
      const created = await api.post("channels", body).catch((e) => {
        if (e.code === "CONFLICT") e.hint = "Choose another name: each channel's name is its own.";
        throw e;
      });
      freshTokens.set(created.id, { token: created.token, what: "created" });
      navigate(`/channels/${created.id}`);
    });
  };

  return (
    <section>
      <h1>Channels</h1>
      <p class="muted">
        A channel gives an AI agent (Claude Desktop, Cursor, any MCP client) some of your functions as tools, at{" "}
        <code>/mcp</code>, behind one token. The agent can call those functions and nothing else.
      </p>
      <ErrorBanner error={list.error || functions.error} />
      {list.loading && !list.data ? (
        <Loading />
      ) : (
        <Table
          label="Channels"
          rows={list.data || []}
          empty="No channels yet. Create one below."
          onRow={(c) => navigate(`/channels/${c.id}`)}
          columns={[
            { title: "Name", render: (c) => <a href={`#/channels/${c.id}`}>{c.name}</a> },
            { title: "Tools", key: "function_count" },
            { title: "Token", render: (c) => <code>{c.prefix}…</code> },
            { title: "Last used", render: (c) => ago(c.last_used_at) },
            { title: "Expires", render: (c) => expiry(c.expires_at) },
            { title: "Created", render: (c) => ago(c.created_at) },
          ]}
        />
      )}
      <h2>Create a channel</h2>
      <form class="form" onSubmit={create} aria-label="Create a channel">
        <ErrorBanner error={action.error} />
        <div class="row">
          <Field label="Name">
            <input
              name="channel_name"
              data-field="name"
              value={form.name}
              required
              maxLength={64}
              onInput={(e) => setForm({ ...form, name: e.target.value })}
            />
          </Field>
          <Field label="Expires in (days)" help="empty = never">
            <input
              name="expires_in_days"
              type="number"
              min="1"
              max="3650"
              value={form.days}
              onInput={(e) => setForm({ ...form, days: e.target.value })}
            />
          </Field>
        </div>
        <Field label="Description" help="What the channel is for (shown here, not to agents)">
          <input
            name="description"
            value={form.description}
            maxLength={1024}
            onInput={(e) => setForm({ ...form, description: e.target.value })}
          />
        </Field>
        <FunctionPicker
          functions={functions.data}
          picked={form.picked}
          onChange={(picked) => setForm({ ...form, picked })}
        />
        <div class="actions left">
          <button class="primary" type="submit" disabled={action.busy}>
            Create channel
          </button>
        </div>
      </form>
    </section>
  );
}

// Checkboxes over every function (a filter box when there are many); `picked` holds function ids.
function FunctionPicker({ functions, picked, onChange, children }) {
  const [filter, setFilter] = useState("");
  if (!functions) return <Loading what="Loading functions" />;
  const shown = functions
    .filter((f) => !filter || f.name.includes(filter.toLowerCase()) || picked.includes(f.id))
    .sort((a, b) => a.name.localeCompare(b.name));
  const toggle = (id) => onChange(picked.includes(id) ? picked.filter((x) => x !== id) : [...picked, id]);
  return (
    <fieldset class="checks picker" data-field="function_ids">
      <legend>Functions offered as tools ({picked.length} chosen)</legend>
      {functions.length > 12 && (
        <input
          type="search"
          aria-label="Filter functions"
          placeholder="Filter by name"
          value={filter}
          onInput={(e) => setFilter(e.target.value)}
        />
      )}
      {functions.length === 0 && (
        <p class="muted">
          No functions yet: <a href="#/functions">create one</a> first.
        </p>
      )}
      {shown.map((f) => (
        <div key={f.id} class="pick">
          <label class="check">
            <input
              type="checkbox"
              name={`fn_${f.name}`}
              checked={picked.includes(f.id)}
              onChange={() => toggle(f.id)}
            />
            {f.name}
          </label>
          {children && picked.includes(f.id) && children(f)}
        </div>
      ))}
    </fieldset>
  );
}

export function ChannelPage({ params }) {
  const id = params.id;
  const channel = useAsync(() => api.get(`channels/${encodeURIComponent(id)}`), [id]);
  const [fresh, setFresh] = useState(() => freshTokens.get(id) || null);
  const [dialog, setDialog] = useState(Boolean(fresh));
  useEffect(() => () => freshTokens.delete(id), [id]); // leaving the page forgets the token
  const action = useAction();
  const [editing, setEditing] = useState(false);
  const c = channel.data;

  const rotate = () =>
    action.run(async () => {
      const rotated = await api.post(`channels/${encodeURIComponent(c.id)}/rotate`);
      const next = { token: rotated.token, what: "rotated" };
      freshTokens.set(c.id, next);
      setFresh(next);
      setDialog(true);
      channel.setData(rotated);
    });
  const remove = () =>
    action.run(async () => {
      await api.del(`channels/${encodeURIComponent(c.id)}`);
      freshTokens.delete(c.id);
      navigate("/channels", { replace: true });
    });

  if (channel.error && !c) return <ErrorBanner error={channel.error} />;
  if (!c) return <Loading />;
  return (
    <section>
      <header class="page-head">
        <div>
          <a href="#/channels" class="muted">
            ← Channels
          </a>
          <h1>{c.name}</h1>
          {c.description && <p class="muted">{c.description}</p>}
        </div>
        <div class="actions">
          <button onClick={() => setEditing(true)}>Edit details</button>
          <ConfirmButton
            label="Rotate token"
            class=""
            question={`Give ${c.name} a new token? Agents using the current one are cut off at once.`}
            onConfirm={rotate}
          />
          <ConfirmButton
            label="Delete channel"
            question={`Delete ${c.name}? Its token stops working at once; the functions stay.`}
            onConfirm={remove}
          />
        </div>
      </header>
      <ErrorBanner error={action.error} />
      <dl class="facts">
        <dt>Token</dt>
        <dd>
          <code>{c.prefix}…</code> (shown only when created or rotated)
        </dd>
        <dt>Expires</dt>
        <dd>{expiry(c.expires_at)}</dd>
        <dt>Last used</dt>
        <dd>{ago(c.last_used_at)}</dd>
        <dt>Created</dt>
        <dd>{ago(c.created_at)}</dd>
      </dl>
      <Tools channel={c} onSaved={(updated) => channel.setData(updated)} />
      {editing && (
        <EditDetails
          channel={c}
          onClose={() => setEditing(false)}
          onSaved={(updated) => {
            channel.setData(updated);
            setEditing(false);
          }}
        />
      )}
      <ConnectAgent channel={c} token={fresh && fresh.token} />
      <Dialog title="Your channel token" open={dialog} onClose={() => setDialog(false)}>
        {fresh && (
          <>
            <p>
              Channel {c.name} {fresh.what}. Copy the token now: this is the only time Orva shows it. It works only at{" "}
              <code>/mcp</code>, never on the API.
            </p>
            <pre class="log" data-testid="channel-token">
              {fresh.token}
            </pre>
            <div class="actions">
              <CopyValue text={fresh.token} what="channel token" />
              <button class="primary" onClick={() => setDialog(false)}>
                Done
              </button>
            </div>
          </>
        )}
      </Dialog>
    </section>
  );
}

// Which functions the channel offers, and the description each tool shows agents (an override; empty: the
// function's own description). One PUT saves both.
function Tools({ channel, onSaved }) {
  const functions = useAsync(() => allPages("functions", "functions"), []);
  const initial = useMemo(
    () => ({
      picked: channel.functions.map((f) => f.function_id),
      texts: Object.fromEntries(channel.functions.map((f) => [f.function_id, f.description || ""])),
    }),
    [channel],
  );
  const [picked, setPicked] = useState(initial.picked);
  const [texts, setTexts] = useState(initial.texts);
  useEffect(() => {
    setPicked(initial.picked);
    setTexts(initial.texts);
  }, [initial]);
  const save = useAction();
  const [saved, setSaved] = useState(false);
  const own = Object.fromEntries((functions.data || []).map((f) => [f.id, f.description || ""]));
  for (const f of channel.functions) own[f.function_id] ??= f.function_description;

  const submit = (e) => {
    e.preventDefault();
    setSaved(false);
    save.run(async () => {
      const descriptions = Object.fromEntries(picked.map((fid) => [fid, (texts[fid] || "").trim()]));
      onSaved(
        await api.put(`channels/${encodeURIComponent(channel.id)}/functions`, { function_ids: picked, descriptions }),
      );
      setSaved(true);
    });
  };

  return (
    <form class="form" onSubmit={submit} aria-label="Tools">
      <h2>Tools</h2>
      <p class="muted">
        Each chosen function is one tool, named after it in snake_case. Agents pick tools by their description: say what
        the function does and what to send it.
      </p>
      <ErrorBanner error={functions.error || save.error} />
      {saved && <Notice kind="ok">Saved. Agents see the new tools on their next tool list.</Notice>}
      <FunctionPicker functions={functions.data} picked={picked} onChange={setPicked}>
        {(f) => (
          <Field label={`Tool ${toolName(f.name)}: description`} help="empty = the function's own description">
            <textarea
              name={`describe_${f.name}`}
              rows="2"
              maxLength={1024}
              placeholder={own[f.id] || "(the function has no description: say here what it does)"}
              value={texts[f.id] || ""}
              onInput={(e) => setTexts({ ...texts, [f.id]: e.target.value })}
            />
          </Field>
        )}
      </FunctionPicker>
      <div class="actions left">
        <button class="primary" type="submit" disabled={save.busy}>
          Save tools
        </button>
      </div>
    </form>
  );
}

// The date an ISO timestamp falls on here, as a date input wants it (yyyy-mm-dd); "" for none.
function dateValue(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

// Name, description and expiry (a day: the channel works until that day ends here; empty: never), in one PATCH
// of what changed; the tools and the token stay as they are.
function EditDetails({ channel, onClose, onSaved }) {
  const [form, setForm] = useState({
    name: channel.name,
    description: channel.description,
    until: dateValue(channel.expires_at),
  });
  const save = useAction();
  const submit = (e) => {
    e.preventDefault();
    save.run(async () => {
      const body = {};
      if (form.name.trim() !== channel.name) body.name = form.name.trim();
      if (form.description !== channel.description) body.description = form.description;
      if (form.until !== dateValue(channel.expires_at)) {
        body.expires_at = form.until ? new Date(`${form.until}T23:59:59`).toISOString() : null;
      }
      const updated = Object.keys(body).length
        ? await api.patch(`channels/${encodeURIComponent(channel.id)}`, body).catch((err) => {
            if (err.code === "CONFLICT") err.hint = "Choose another name: each channel's name is its own.";
            throw err;
          })
        : channel;
      onSaved(updated);
    });
  };
  return (
    <Dialog title="Edit channel" open onClose={onClose}>
      <form class="form" onSubmit={submit} aria-label="Edit channel">
        <ErrorBanner error={save.error} />
        <Field label="Name">
          <input
            name="name"
            value={form.name}
            required
            maxLength={64}
            onInput={(e) => setForm({ ...form, name: e.target.value })}
          />
        </Field>
        <Field label="Description">
          <input
            name="description"
            value={form.description}
            maxLength={1024}
            onInput={(e) => setForm({ ...form, description: e.target.value })}
          />
        </Field>
        <Field label="Expires after" help="the token stops working when this day ends; empty = never">
          <input
            name="expires_at"
            type="date"
            value={form.until}
            onInput={(e) => setForm({ ...form, until: e.target.value })}
          />
        </Field>
        <div class="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={save.busy}>
            Save details
          </button>
        </div>
      </form>
    </Dialog>
  );
}
