// Firewall (issue 24): egress rules for network_mode egress functions (docs/NETWORK.md, Egress rules): the
// global deny list (add, delete), a resolve box (what a name resolves to, which rules match), and the DNS
// servers egress sandboxes use. Admin only; a change reaches running workers at once.
import { useState } from "preact/hooks";
import { api } from "../api.js";
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

const KINDS = { cidr: "address range", host: "hostname", wildcard: "names under a domain" };

function ports(rule) {
  return rule.ports.length ? rule.ports.join(", ") : "all";
}

function blocks(rule) {
  if (rule.addresses.length) return rule.addresses.join(", ");
  return rule.error ? `not resolved: ${rule.error}` : "nothing yet";
}

function RuleForm({ onAdded }) {
  const [form, setForm] = useState({ target: "", ports: "", description: "" });
  const action = useAction();
  const add = (e) => {
    e.preventDefault();
    action.run(async () => {
      const list = form.ports
        .split(/[\s,]+/)
        .filter(Boolean)
        .map((p) => Number(p));
      if (list.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
        throw new Error("Ports are numbers from 1 to 65535, separated by commas (empty: every port).");
      }
      await api.post("firewall/rules", { target: form.target.trim(), ports: list, description: form.description });
      setForm({ target: "", ports: "", description: "" });
      onAdded();
    });
  };
  return (
    <form class="form" onSubmit={add} aria-label="Add a rule">
      <ErrorBanner error={action.error} />
      <Field label="Deny" help="An address or range (203.0.113.0/24, 2001:db8::/32), a hostname, or *.example.com">
        <input
          name="target"
          required
          value={form.target}
          onInput={(e) => setForm({ ...form, target: e.target.value })}
          placeholder="203.0.113.0/24"
        />
      </Field>
      <Field label="Ports" help="Comma-separated, TCP and UDP; empty: every port">
        <input name="ports" value={form.ports} onInput={(e) => setForm({ ...form, ports: e.target.value })} />
      </Field>
      <Field label="Description">
        <input
          name="description"
          maxLength={256}
          value={form.description}
          onInput={(e) => setForm({ ...form, description: e.target.value })}
        />
      </Field>
      <button class="primary" disabled={action.busy}>
        Add rule
      </button>
    </form>
  );
}

function ResolveBox() {
  const [host, setHost] = useState("");
  const [answer, setAnswer] = useState(null);
  const action = useAction();
  const check = (e) => {
    e.preventDefault();
    action.run(async () => setAnswer(await api.post("firewall/resolve", { host: host.trim() })));
  };
  return (
    <div>
      <form class="form row" role="search" onSubmit={check} aria-label="Resolve">
        <Field label="Name or address">
          <input
            name="host"
            required
            value={host}
            onInput={(e) => setHost(e.target.value)}
            placeholder="api.example.com"
          />
        </Field>
        <button disabled={action.busy}>Resolve</button>
      </form>
      <ErrorBanner error={action.error} />
      {answer && (
        <div data-testid="resolve-answer">
          <p>
            <strong>{answer.host}</strong>
            {" → "}
            {answer.addresses.length
              ? answer.addresses.join(", ")
              : answer.error
                ? `no answer (${answer.error})`
                : "no address"}
            {answer.ttl != null && (
              <span class="muted">
                {" "}
                (TTL {answer.ttl} s, asked {answer.servers.join(", ")})
              </span>
            )}
          </p>
          <p>
            {answer.rules.length
              ? `${answer.blocked ? "Blocked" : "Matched on some ports"} by: ${answer.rules
                  .map((r) => `${r.target}${r.ports.length ? ` (ports ${r.ports.join(", ")})` : ""}`)
                  .join("; ")}`
              : "No rule matches: egress functions may reach it (unless their own allow list leaves it out)."}
          </p>
        </div>
      )}
    </div>
  );
}

function DnsServers() {
  const dns = useAsync(() => api.get("firewall/dns"), []);
  const [text, setText] = useState(null);
  const action = useAction();
  if (dns.loading && !dns.data) return <Loading />;
  const current = dns.data ? dns.data.servers.join("\n") : "";
  const value = text === null ? current : text;
  const save = (e) => {
    e.preventDefault();
    action.run(async () => {
      const servers = value.split(/[\s,]+/).filter(Boolean);
      dns.setData(await api.put("firewall/dns", { servers }));
      setText(null);
    });
  };
  return (
    <form class="form" onSubmit={save} aria-label="DNS servers">
      <ErrorBanner error={dns.error || action.error} />
      {dns.data && (
        <p class="muted" data-testid="dns-source">
          {dns.data.source === "configured"
            ? `Egress functions resolve names with ${dns.data.effective.join(", ")}.`
            : `Egress functions use this host's resolv.conf (${dns.data.effective.join(", ") || "no server found"}).`}
        </p>
      )}
      <Field label="DNS servers" help="One IP address per line, at most 4; empty: the host's resolv.conf">
        <textarea name="servers" rows={3} value={value} onInput={(e) => setText(e.target.value)} />
      </Field>
      <button disabled={action.busy}>Save DNS servers</button>
    </form>
  );
}

export function FirewallView() {
  const rules = useAsync(() => api.get("firewall/rules"), []);
  const action = useAction();
  const remove = (rule) =>
    action.run(async () => {
      await api.del(`firewall/rules/${rule.id}`);
      rules.reload();
    });
  return (
    <section>
      <h1>Firewall</h1>
      <p class="muted">
        Where functions with network mode <code>egress</code> may not connect. A rule takes effect at once, for workers
        already running too. A function's own allow list (Settings → Egress allow list) makes it reach only what it
        names.
      </p>
      <ErrorBanner error={rules.error || action.error} />
      {rules.data && !rules.data.egress.ok && (
        <Notice kind="warning">
          Egress is not available on this host ({rules.data.egress.detail}); rules apply once it is.
        </Notice>
      )}
      <h2>Deny rules</h2>
      {rules.loading && !rules.data ? (
        <Loading />
      ) : (
        <Table
          label="Deny rules"
          rows={rules.data ? rules.data.rules : []}
          empty="No rules: egress functions may reach every public address."
          columns={[
            { title: "Deny", render: (r) => <code>{r.target}</code> },
            { title: "Kind", render: (r) => KINDS[r.kind] },
            { title: "Ports", render: ports },
            { title: "Blocks now", render: blocks },
            { title: "Description", key: "description" },
            { title: "Added", render: (r) => ago(r.created_at) },
            {
              title: "",
              render: (r) => (
                <ConfirmButton
                  label="Delete"
                  question={`Delete the rule for ${r.target}? Egress functions may reach it again at once.`}
                  onConfirm={() => remove(r)}
                />
              ),
            },
          ]}
        />
      )}
      <p class="muted">
        A hostname is resolved by orvad and resolved again when its DNS answer expires. A <code>*.example.com</code>{" "}
        rule blocks only the names under it that orvad resolves (from rules and allow lists): to keep functions away
        from a whole domain, use allow lists or deny its address ranges.
      </p>
      <h2>Add a rule</h2>
      <RuleForm onAdded={rules.reload} />
      <h2>Resolve</h2>
      <ResolveBox />
      <h2>DNS servers</h2>
      <DnsServers />
    </section>
  );
}
