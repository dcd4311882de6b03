// The Webhooks tab: the function's inbound webhooks (GitHub, Stripe, Slack or any HMAC sender runs it at a
// public URL with no Orva key; orvad checks the signature first). List them with their URL and last
// delivery, add one (its secret is shown once, with a copy button), enable or disable, rotate the
// secret (shown once again), delete.
import { useState } from "preact/hooks";
import { api } from "../api.js";
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

const FORMATS = [
  ["github", "GitHub (X-Hub-Signature-256)"],
  ["stripe", "Stripe (Stripe-Signature)"],
  ["slack", "Slack (X-Slack-Signature)"],
  ["hmac_sha256_hex", "HMAC-SHA256, hex, in a header you name"],
  ["hmac_sha256_base64", "HMAC-SHA256, base64, in a header you name"],
];
const base = (fn) => `functions/${fn.id}/inbound-webhooks`;

export function WebhooksTab({ fn }) {
  const hooks = useAsync(() => api.get(base(fn)), [fn.id]);
  const [adding, setAdding] = useState(false);
  const [shown, setShown] = useState(null); // a webhook with its secret: shown once
  const done = (withSecret) => {
    setShown(withSecret || null);
    setAdding(false);
    hooks.reload();
  };
  return (
    <div>
      <p class="muted">
        Senders such as GitHub, Stripe or Slack call the function at its webhook's URL without an Orva key; orvad checks
        their signature with the webhook's secret before the function runs, and refuses replays.
      </p>
      {shown && <SecretOnce hook={shown} onClose={() => setShown(null)} />}
      <div class="actions left">
        <button onClick={() => setAdding(true)} disabled={adding}>
          New webhook
        </button>
      </div>
      {adding && <NewWebhook fn={fn} onClose={() => setAdding(false)} onCreated={done} />}
      <ErrorBanner error={hooks.error} />
      {hooks.data === null ? (
        !hooks.error && <Loading what="Loading webhooks" />
      ) : (
        <Table
          label="Inbound webhooks"
          rows={hooks.data.webhooks}
          empty="No inbound webhooks yet."
          columns={[
            { title: "Name", key: "name" },
            { title: "Format", key: "format" },
            { title: "Mode", key: "mode" },
            {
              title: "URL",
              render: (h) => (
                <span>
                  <code>{h.url}</code> <CopyValue text={h.url} what={`URL of ${h.name}`} />
                </span>
              ),
            },
            {
              title: "Last delivery",
              render: (h) => (h.last_delivery_at ? `${h.last_status} · ${ago(h.last_delivery_at)}` : "never"),
            },
            { title: "Deliveries", key: "deliveries" },
            { title: "", render: (h) => <Actions fn={fn} hook={h} onChanged={done} /> },
          ]}
        />
      )}
    </div>
  );
}

function SecretOnce({ hook, onClose }) {
  return (
    <section class="card" aria-label="Webhook secret">
      <Notice kind="warn">
        The secret of <strong>{hook.name}</strong> is shown this once: give it to the sender now. Orva keeps it sealed
        and never shows it again (rotate it to get a new one).
      </Notice>
      <p>
        URL: <code>{hook.url}</code> <CopyValue text={hook.url} what="webhook URL" />
      </p>
      <p>
        Secret: <code data-testid="webhook-secret">{hook.secret}</code>{" "}
        <CopyValue text={hook.secret} what="webhook secret" />
      </p>
      <p class="muted">The sender signs in {hook.signature_headers.join(", ")}.</p>
      <div class="actions left">
        <button onClick={onClose}>I have stored it</button>
      </div>
    </section>
  );
}

function Actions({ fn, hook, onChanged }) {
  const action = useAction();
  const path = `${base(fn)}/${hook.id}`;
  return (
    <span class="actions left">
      <button
        onClick={(e) => {
          e.stopPropagation();
          action.run(async () => {
            await api.put(path, { enabled: !hook.enabled });
            onChanged(null);
          });
        }}
        disabled={action.busy}
      >
        {hook.enabled ? "Disable" : "Enable"}
      </button>
      <ConfirmButton
        class=""
        label="Rotate secret"
        question={`Make a new secret for ${hook.name}? The current one stops working at once.`}
        onConfirm={() => action.run(async () => onChanged(await api.post(`${path}/rotate`, {})))}
      />
      <ConfirmButton
        label="Delete"
        question={`Delete the webhook ${hook.name}? Its URL answers 404 from then on.`}
        onConfirm={() =>
          action.run(async () => {
            await api.del(path);
            onChanged(null);
          })
        }
      />
      <ErrorBanner error={action.error} />
    </span>
  );
}

function NewWebhook({ fn, onClose, onCreated }) {
  const [name, setName] = useState("");
  const [format, setFormat] = useState("github");
  const [header, setHeader] = useState("");
  const [prefix, setPrefix] = useState("");
  const [mode, setMode] = useState("sync");
  const [secret, setSecret] = useState("");
  const action = useAction();
  const hmac = format.startsWith("hmac");
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { name, format, mode };
      if (hmac && header) body.header = header;
      if (hmac && prefix) body.prefix = prefix;
      if (secret) body.secret = secret;
      onCreated(await api.post(base(fn), body));
    });
  };
  return (
    <section class="card" aria-label="New webhook">
      <header class="page-head">
        <h2>New inbound webhook</h2>
        <button class="link" onClick={onClose} aria-label="Close">
          ×
        </button>
      </header>
      <ErrorBanner error={action.error} />
      <form class="form" onSubmit={submit} aria-label="Add a webhook">
        <Field label="Name">
          <input name="webhook_name" value={name} required onInput={(e) => setName(e.target.value)} />
        </Field>
        <Field label="Sender">
          <select name="webhook_format" value={format} onChange={(e) => setFormat(e.target.value)}>
            {FORMATS.map(([value, label]) => (
              <option value={value}>{label}</option>
            ))}
          </select>
        </Field>
        {hmac && (
          <Field label="Signature header" help="Default X-Signature.">
            <input name="webhook_header" value={header} onInput={(e) => setHeader(e.target.value)} />
          </Field>
        )}
        {hmac && (
          <Field label="Prefix" help="Text before the signature, e.g. sha256=">
            <input name="webhook_prefix" value={prefix} onInput={(e) => setPrefix(e.target.value)} />
          </Field>
        )}
        <Field label="Mode">
          <select name="webhook_mode" value={mode} onChange={(e) => setMode(e.target.value)}>
            <option value="sync">Run now: the function's reply goes back</option>
            <option value="async">Queue a job: answer 202 at once</option>
          </select>
        </Field>
        <Field label="Secret" help="Leave empty and Orva makes one. Stripe and Slack give you theirs: paste it.">
          <input
            name="webhook_secret"
            type="password"
            autocomplete="off"
            value={secret}
            onInput={(e) => setSecret(e.target.value)}
          />
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
