// Cron (issue 23): a function's schedules (the Cron tab of the function page) and every function's (the
// Schedules page, /schedules). Each run is a job with trigger cron: last status is that job's, linked to it.
// A schedule's times are shown in UTC and in its own timezone; "Run now" enqueues one run by hand.
import { useState } from "preact/hooks";
import { api, query } from "../api.js";
import {
  ConfirmButton,
  ErrorBanner,
  Field,
  LoadMore,
  Loading,
  Table,
  useAction,
  useAsync,
  usePaged,
} from "../components/ui.jsx";
import { navigate } from "../router.js";

const EXAMPLES = [
  ["*/5 * * * *", "every 5 minutes"],
  ["0 * * * *", "every hour"],
  ["30 2 * * *", "02:30 every day"],
  ["0 9 * * mon-fri", "09:00 on weekdays"],
  ["@daily", "midnight every day"],
];

const schedulePath = (fnId, s) => `functions/${fnId}/cron/${encodeURIComponent(s.id)}`;

// "2026-03-08 07:30 UTC (03:30 America/New_York)": the moment in UTC, and as the schedule's timezone reads it
export function when(iso, timezone) {
  if (!iso) return "—";
  const utc = `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
  if (!timezone || timezone === "UTC") return utc;
  try {
    const local = new Intl.DateTimeFormat("en-GB", {
      timeZone: timezone,
      hour: "2-digit",
      minute: "2-digit",
      month: "short",
      day: "numeric",
    }).format(new Date(iso));
    return `${utc} (${local} ${timezone})`;
  } catch {
    return utc;
  }
}

// the same on two lines, for table cells
function At({ iso, timezone }) {
  if (!iso) return "—";
  const text = when(iso, timezone);
  const cut = text.indexOf(" (");
  if (cut < 0) return text;
  return (
    <span class="when">
      {text.slice(0, cut)}
      <br />
      <small class="muted">{text.slice(cut + 2, -1)}</small>
    </span>
  );
}

function statusBadge(s) {
  if (!s.last_job_id) return <span class="muted">never run</span>;
  const look = { succeeded: "success", dead: "error", failed: "timeout", running: "building", pending: "queued" };
  const status = s.last_status || "gone";
  return (
    <a href={`#/jobs/${s.last_job_id}`} title="the last run's job" data-status={status}>
      <span class={`badge ${look[status] || status}`}>{status}</span>
    </a>
  );
}

function parsePayload(text) {
  if (!text.trim()) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    const error = new Error(`the payload is not JSON: ${e.message}`);
    error.code = "VALIDATION";
    error.hint = 'Write JSON: {"report": "daily"}, a string in quotes, or leave it empty for null.';
    error.details = { field: "payload" };
    throw error;
  }
}

export function CronTab({ fn }) {
  const list = useAsync(() => api.get(`functions/${fn.id}/cron`), [fn.id]);
  const [open, setOpen] = useState(null); // the schedule in the editor, or "" for a new one
  const action = useAction();
  const schedules = list.data ? list.data.schedules : null;
  // the editor's schedule as the list now has it (a save answers the new record before the list reloads)
  const current = open && schedules ? schedules.find((s) => s.id === open.id) || open : open;
  const toggle = (s) =>
    action.run(async () => {
      await api.put(schedulePath(fn.id, s), { enabled: !s.enabled });
      list.reload();
    });
  const runNow = (s) =>
    action.run(async () => {
      await api.post(`${schedulePath(fn.id, s)}/run`, {});
      list.reload();
    });
  return (
    <div>
      <p class="muted">
        Run this function on a schedule: each run is a job (with its retries) whose request body is the schedule's
        payload, with the header <code>x-orva-trigger: cron</code>. Handlers manage their own schedules with{" "}
        <code>orva.cron</code>. Times are local times of each schedule's timezone.
      </p>
      <div class="actions left">
        <button onClick={() => setOpen("")}>New schedule</button>
      </div>
      <ErrorBanner error={list.error || action.error} />
      {schedules === null ? (
        <Loading what="Loading schedules" />
      ) : (
        <Table
          label="Schedules"
          rows={schedules}
          selected={open ? open.id : undefined}
          onRow={(s) => setOpen(s)}
          empty="No schedules yet."
          columns={[
            { title: "Name", render: (s) => <strong>{s.name}</strong> },
            { title: "Expression", render: (s) => <code>{s.expression}</code> },
            {
              title: "Next run",
              render: (s) => (s.enabled ? <At iso={s.next_run_at} timezone={s.timezone} /> : "disabled"),
            },
            { title: "Last run", render: (s) => <At iso={s.last_run_at} timezone={s.timezone} /> },
            { title: "Last status", render: statusBadge },
            {
              title: "Actions",
              render: (s) => (
                <span class="row-actions">
                  <button onClick={() => toggle(s)} disabled={action.busy}>
                    {s.enabled ? "Disable" : "Enable"}
                  </button>{" "}
                  <button onClick={() => runNow(s)} disabled={action.busy}>
                    Run now
                  </button>
                </span>
              ),
            },
          ]}
        />
      )}
      {open !== null && (
        <ScheduleEditor
          key={open ? open.id : "new"}
          fn={fn}
          schedule={current || null}
          onClose={() => setOpen(null)}
          onSaved={(saved) => {
            list.reload();
            setOpen(saved);
          }}
        />
      )}
    </div>
  );
}

function ScheduleEditor({ fn, schedule, onClose, onSaved }) {
  const isNew = !schedule;
  const [form, setForm] = useState(() => ({
    name: schedule ? schedule.name : "",
    expression: schedule ? schedule.expression : "",
    timezone: schedule ? schedule.timezone : "UTC",
    payload: schedule && schedule.payload !== null ? JSON.stringify(schedule.payload, null, 2) : "",
    catch_up: schedule ? schedule.catch_up : "once",
    enabled: schedule ? schedule.enabled : true,
  }));
  const action = useAction();
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.type === "checkbox" ? e.target.checked : e.target.value });
  const save = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = {
        name: form.name,
        expression: form.expression,
        timezone: form.timezone,
        payload: parsePayload(form.payload),
        catch_up: form.catch_up,
        enabled: form.enabled,
      };
      const saved = isNew
        ? await api.post(`functions/${fn.id}/cron`, body)
        : await api.put(schedulePath(fn.id, schedule), body);
      onSaved(saved);
    });
  };
  const remove = () =>
    action.run(async () => {
      await api.del(schedulePath(fn.id, schedule));
      onSaved(null);
    });
  return (
    <section class="card" aria-label={isNew ? "New schedule" : `Schedule ${schedule.name}`}>
      <header class="page-head">
        <h2>{isNew ? "New schedule" : schedule.name}</h2>
        <button class="link" onClick={onClose} aria-label="Close">
          ×
        </button>
      </header>
      <ErrorBanner error={action.error} />
      {schedule && (
        <p class="muted" data-testid="cron-meta">
          Next run {schedule.enabled ? when(schedule.next_run_at, schedule.timezone) : "— (disabled)"} · last run{" "}
          {when(schedule.last_run_at, schedule.timezone)} · written by{" "}
          {schedule.source === "sdk" ? "its code" : "the API"}
        </p>
      )}
      <form class="form" onSubmit={save} aria-label={isNew ? "Add a schedule" : "Edit the schedule"}>
        <Field label="Name" help="a-z, 0-9, - and _, starting with a letter; unique in this function">
          <input name="name" value={form.name} required placeholder="nightly-report" onInput={set("name")} />
        </Field>
        <Field
          label="Expression"
          help={`minute hour day-of-month month day-of-week, or @hourly, @daily... e.g. ${EXAMPLES.map(
            ([e, what]) => `${e} (${what})`,
          ).join(", ")}`}
        >
          <input
            name="expression"
            value={form.expression}
            required
            placeholder="30 2 * * *"
            onInput={set("expression")}
          />
        </Field>
        <Field label="Timezone" help="an IANA name: UTC, Europe/Berlin, America/New_York">
          <input name="timezone" value={form.timezone} required onInput={set("timezone")} />
        </Field>
        <Field label="Payload (JSON)" help="each run's request body; empty for null">
          <textarea name="payload" rows={4} spellcheck={false} value={form.payload} onInput={set("payload")} />
        </Field>
        <Field label="After downtime" help="a run missed while orvad was down">
          <select name="catch_up" value={form.catch_up} onChange={set("catch_up")}>
            <option value="once">Run once at start</option>
            <option value="skip">Skip it</option>
          </select>
        </Field>
        <label class="check">
          <input type="checkbox" name="enabled" checked={form.enabled} onChange={set("enabled")} /> Enabled
        </label>
        <div class="actions left">
          <button type="submit" class="primary" disabled={action.busy}>
            {isNew ? "Add schedule" : "Save"}
          </button>
          {!isNew && (
            <ConfirmButton
              label="Delete schedule"
              question={`Delete the schedule ${schedule.name}?`}
              onConfirm={remove}
            />
          )}
        </div>
      </form>
    </section>
  );
}

export function SchedulesView({ query: q }) {
  const enabled = q.enabled || "";
  const list = usePaged((cursor) => `cron${query({ enabled, limit: 100, cursor })}`, "schedules", [enabled]);
  return (
    <section>
      <header class="page-head">
        <h1>Schedules</h1>
      </header>
      <p class="muted">
        Every function's cron schedules. Open a function's Cron tab to add or change them; each run is a job (see Jobs).
      </p>
      <form class="form row" aria-label="Filter schedules">
        <Field label="Show">
          <select
            name="enabled"
            value={enabled}
            onChange={(e) => navigate(`/schedules${query({ enabled: e.target.value })}`)}
          >
            <option value="">All</option>
            <option value="true">Enabled</option>
            <option value="false">Disabled</option>
          </select>
        </Field>
      </form>
      <ErrorBanner error={list.error} />
      {list.items === null ? (
        <Loading what="Loading schedules" />
      ) : (
        <Table
          label="All schedules"
          rows={list.items}
          onRow={(s) => navigate(`/functions/${s.function_id}?tab=cron`)}
          empty="No schedules yet: add one on a function's Cron tab."
          columns={[
            {
              title: "Function",
              render: (s) => <a href={`#/functions/${s.function_id}?tab=cron`}>{s.function_name}</a>,
            },
            { title: "Name", key: "name" },
            { title: "Expression", render: (s) => <code>{s.expression}</code> },
            {
              title: "Next run",
              render: (s) => (s.enabled ? <At iso={s.next_run_at} timezone={s.timezone} /> : "disabled"),
            },
            { title: "Last run", render: (s) => <At iso={s.last_run_at} timezone={s.timezone} /> },
            { title: "Last status", render: statusBadge },
          ]}
        />
      )}
      <LoadMore paged={list} />
    </section>
  );
}
