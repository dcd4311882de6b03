// The Webhooks page: outbound webhooks (Orva POSTs what happened to a receiver, signed, from an outbox kept
// until each delivery is delivered or its 24 h retry window has passed). List them, add one (its signing
// secret is shown once), send a test ping, enable or disable, rotate the secret, delete; a webhook's
// deliveries with their attempts, and a failed one sent again. Inbound webhooks live on each function's page.
import { useEffect, useState } from "preact/hooks";
import { api, query } from "../api.js";
import { CopyValue } from "../components/copy.jsx";
import {
  ConfirmButton,
  ErrorBanner,
  Field,
  Loading,
  Notice,
  Table,
  ago,
  useAction,
  useAsync,
} from "../components/ui.jsx";

const EVENTS = [
  "deployment.succeeded",
  "deployment.failed",
  "function.created",
  "function.updated",
  "function.deleted",
  "execution.error",
  "job.succeeded",
  "job.failed",
  "cron.failed",
];

export function WebhooksView() {
  const hooks = useAsync(() => api.get("webhooks"), []);
  const [adding, setAdding] = useState(false);
  const [shown, setShown] = useState(null); // a webhook with its secret: shown once
  const [open, setOpen] = useState(null); // the webhook whose deliveries are shown
  const done = (withSecret) => {
    setShown(withSecret || null);
    setAdding(false);
    hooks.reload();
  };
  return (
    <div>
      <header class="page-head">
        <h1>Webhooks</h1>
      </header>
      <p class="muted">
        Orva tells other systems what happened: each event a receiver asked for is stored, then POSTed to its URL,
        signed with its secret, and tried again for 24 hours until it answers 2xx. Functions run by other systems'
        webhooks are set up on each function's Webhooks tab.
      </p>
      {shown && <SecretOnce hook={shown} onClose={() => setShown(null)} />}
      <div class="actions left">
        <button onClick={() => setAdding(true)} disabled={adding}>
          New webhook
        </button>
      </div>
      {adding && <NewWebhook onClose={() => setAdding(false)} onCreated={done} />}
      <ErrorBanner error={hooks.error} />
      {hooks.data === null ? (
        !hooks.error && <Loading what="Loading webhooks" />
      ) : (
        <Table
          label="Outbound webhooks"
          rows={hooks.data.webhooks}
          empty="No webhooks yet: add one to be told of deployments, failures and jobs."
          onRow={(h) => setOpen(h.id === open ? null : h.id)}
          selected={open}
          columns={[
            { title: "URL", render: (h) => <code>{h.url}</code> },
            { title: "Events", render: (h) => h.events.join(", ") },
            { title: "Enabled", render: (h) => (h.enabled ? "yes" : "no") },
            { title: "", render: (h) => <Actions hook={h} onChanged={done} /> },
          ]}
        />
      )}
      {open && <Deliveries id={open} />}
    </div>
  );
}

function SecretOnce({ hook, onClose }) {
  return (
    <section class="card" aria-label="Webhook secret">
      <Notice kind="warn">
        The signing secret of <code>{hook.url}</code> is shown this once: give it to the receiver now. Orva keeps it
        sealed and never shows it again (rotate it to get a new one).
      </Notice>
      <p>
        Secret: <code data-testid="outbound-secret">{hook.secret}</code>{" "}
        <CopyValue text={hook.secret} what="webhook secret" />
      </p>
      <div class="actions left">
        <button onClick={onClose}>I have stored it</button>
      </div>
    </section>
  );
}

function Actions({ hook, onChanged }) {
  const action = useAction();
  const [note, setNote] = useState("");
  const path = `webhooks/${hook.id}`;
  const stop = (e) => e.stopPropagation();
  return (
    <span class="actions left" onClick={stop}>
      <button
        onClick={() =>
          action.run(async () => {
            const ping = await api.post(`${path}/test`, {});
            setNote(`Test ping ${ping.id} queued: open the webhook to follow it.`);
          })
        }
        disabled={action.busy || !hook.enabled}
      >
        Send test
      </button>
      <button
        onClick={() =>
          action.run(async () => {
            await api.put(path, { enabled: !hook.enabled });
            onChanged(null);
          })
        }
        disabled={action.busy}
      >
        {hook.enabled ? "Disable" : "Enable"}
      </button>
      <ConfirmButton
        class=""
        label="Rotate secret"
        question="Make a new signing secret? Deliveries are signed with the new one from now on."
        onConfirm={() => action.run(async () => onChanged(await api.post(`${path}/rotate`, {})))}
      />
      <ConfirmButton
        label="Delete"
        question={`Delete the webhook to ${hook.url}? Its pending deliveries are never sent.`}
        onConfirm={() =>
          action.run(async () => {
            await api.del(path);
            onChanged(null);
          })
        }
      />
      {note && <span class="muted">{note}</span>}
      <ErrorBanner error={action.error} />
    </span>
  );
}

function Deliveries({ id }) {
  const [status, setStatus] = useState("");
  const list = useAsync(
    () => api.get(`webhooks/${id}/deliveries${query({ status: status || undefined })}`),
    [id, status],
  );
  const action = useAction();
  const waiting = (list.data?.deliveries || []).some((d) => d.status === "pending");
  useEffect(() => {
    if (!waiting) return undefined;
    // pending ones: follow them until they settle, after 1 s, then 2, 4 ... 30 s apart (a receiver that
    // stays down retries for hours: a tab left open reads the list twice a minute, not every second)
    let delay = 1000;
    let timer = null;
    const tick = () => {
      list.reload();
      delay = Math.min(delay * 2, 30000);
      timer = setTimeout(tick, delay);
    };
    timer = setTimeout(tick, delay);
    return () => clearTimeout(timer);
  }, [waiting, id, status]);
  return (
    <section class="card" aria-label="Deliveries">
      <header class="page-head">
        <h2>Deliveries</h2>
        <select aria-label="Delivery status" value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">All</option>
          <option value="pending">Pending</option>
          <option value="delivered">Delivered</option>
          <option value="failed">Failed</option>
        </select>
        <button onClick={() => list.reload()}>Refresh</button>
      </header>
      <ErrorBanner error={list.error || action.error} />
      {list.data === null ? (
        !list.error && <Loading what="Loading deliveries" />
      ) : (
        <Table
          label="Webhook deliveries"
          rows={list.data.deliveries}
          empty="No deliveries yet: send a test."
          columns={[
            { title: "Event", key: "event_type" },
            { title: "Status", key: "status" },
            { title: "Attempts", key: "attempts" },
            {
              title: "Last answer",
              render: (d) => d.last_error || (d.last_status_code ? String(d.last_status_code) : "—"),
            },
            { title: "Created", render: (d) => ago(d.created_at) },
            {
              title: "",
              render: (d) =>
                d.status === "failed" && (
                  <button
                    onClick={() =>
                      action.run(async () => {
                        await api.post(`webhooks/deliveries/${d.id}/retry`, {});
                        list.reload();
                      })
                    }
                    disabled={action.busy}
                  >
                    Send again
                  </button>
                ),
            },
          ]}
        />
      )}
    </section>
  );
}

function NewWebhook({ onClose, onCreated }) {
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState(["deployment.failed", "execution.error"]);
  const [description, setDescription] = useState("");
  const action = useAction();
  const toggle = (event) => setEvents(events.includes(event) ? events.filter((e) => e !== event) : [...events, event]);
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { url, events: events.length ? events : ["*"] };
      if (description) body.description = description;
      onCreated(await api.post("webhooks", body));
    });
  };
  return (
    <section class="card" aria-label="New webhook">
      <header class="page-head">
        <h2>New outbound webhook</h2>
        <button class="link" onClick={onClose} aria-label="Close">
          ×
        </button>
      </header>
      <ErrorBanner error={action.error} />
      <form class="form" onSubmit={submit} aria-label="Add an outbound webhook">
        <Field label="Receiver URL" help="http:// or https://; redirects are not followed.">
          <input name="webhook_url" value={url} required onInput={(e) => setUrl(e.target.value)} />
        </Field>
        <Field label="Events" help="None ticked: every event.">
          <div>
            {EVENTS.map((event) => (
              <label class="check">
                <input type="checkbox" checked={events.includes(event)} onChange={() => toggle(event)} /> {event}
              </label>
            ))}
          </div>
        </Field>
        <Field label="Description">
          <input name="webhook_description" value={description} onInput={(e) => setDescription(e.target.value)} />
        </Field>
        <div class="actions left">
          <button type="submit" class="primary" disabled={action.busy}>
            Create webhook
          </button>
        </div>
      </form>
    </section>
  );
}
