// Settings → Backup (issue 24): download a backup, restore one (checked completely first, then a confirm
// step; a refused archive shows why and changes nothing), and the scheduled backups' last result.
import { useState } from "preact/hooks";
import { ApiError, api } from "../api.js";
import { ago, bytes, ConfirmButton, ErrorBanner, Loading, Notice, useAction, useAsync } from "../components/ui.jsx";

const UI_HINTS = {
  BACKUP_INVALID: "Choose a file made by Download backup (or orva backup download), unchanged.",
  RESTORE_RUNNING: "Wait for the running restore to finish, then try again.",
  PAYLOAD_TOO_LARGE: "The file is larger than this orvad accepts (ORVA_RESTORE_MAX_BYTES).",
};

async function restoreFile(file) {
  const form = new FormData();
  form.append("archive", file, file.name);
  const res = await fetch("/api/v1/restore?confirm=1", {
    method: "POST",
    body: form,
    headers: { "X-Orva-CSRF": "1" },
    credentials: "same-origin",
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const error = new ApiError(res.status, data);
    if (UI_HINTS[error.code]) error.hint = UI_HINTS[error.code];
    throw error;
  }
  return data;
}

function lastScheduled(s) {
  if (!s.scheduled) return "Off: set ORVA_BACKUP_DIR (and ORVA_BACKUP_EVERY, ORVA_BACKUP_KEEP) to take them.";
  if (!s.last) return `None yet; the first at ${s.next_at}.`;
  if (!s.last.ok) return `Failed ${ago(s.last.at)}: ${s.last.error}`;
  return `${s.last.file} (${bytes(s.last.bytes)}), ${ago(s.last.at)}; next at ${s.next_at}.`;
}

export function BackupCard() {
  const status = useAsync(() => api.get("backup/status"), []);
  const action = useAction();
  const [file, setFile] = useState(null);
  const [done, setDone] = useState(null);
  const restore = () =>
    action.run(async () => {
      setDone(null);
      setDone(await restoreFile(file));
      status.reload();
    });
  const s = status.data;
  return (
    <section aria-label="Backup">
      <h2>Backup</h2>
      <p class="muted">
        A backup holds the database, the master key and every retained function version: keep it as safely as the server
        itself. Taking one does not interrupt invocations.
      </p>
      <ErrorBanner error={status.error} />
      <div class="actions left">
        <a class="button primary" href="/api/v1/backup" download data-testid="backup-download">
          Download backup
        </a>
      </div>
      <h3>Restore</h3>
      <p class="muted">
        Replaces every function, version, key, secret and setting with the backup's, without a restart. The file is
        checked completely first; a bad one changes nothing. Afterwards your login is the backup's.
      </p>
      <ErrorBanner error={action.error} />
      {done && (
        <Notice kind="ok">
          Restored {done.files} files and {done.versions} versions from the backup of {done.manifest.created_at}.
        </Notice>
      )}
      <div class="actions left">
        <input
          type="file"
          name="archive"
          accept=".tar.gz,.tgz,application/gzip"
          aria-label="Backup file"
          onChange={(e) => setFile(e.target.files[0] || null)}
        />
        {file && !action.busy && (
          <ConfirmButton
            label="Restore"
            question={`Restore ${file.name}? Every function, version, key, secret and setting of this orvad is replaced.`}
            onConfirm={restore}
          />
        )}
        {action.busy && <span class="muted">Checking and restoring…</span>}
      </div>
      <h3>Scheduled backups</h3>
      {!s ? (
        <Loading />
      ) : (
        <dl class="facts" data-testid="backup-status">
          <dt>Last</dt>
          <dd data-testid="backup-last">{lastScheduled(s)}</dd>
          {s.scheduled && (
            <>
              <dt>Every</dt>
              <dd>
                {s.every_s} s into <code>{s.dir}</code>, keeping {s.keep}
              </dd>
              <dt>Kept</dt>
              <dd>{s.files.length ? s.files.map((f) => `${f.name} (${bytes(f.bytes)})`).join(", ") : "none"}</dd>
            </>
          )}
          {s.last_restore && (
            <>
              <dt>Last restore</dt>
              <dd>
                {ago(s.last_restore.at)}, the backup of {s.last_restore.created_at}
              </dd>
            </>
          )}
        </dl>
      )}
    </section>
  );
}
