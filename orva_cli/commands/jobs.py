"""`orva jobs`: durable background invocations (issue 23): enqueue, list (the dead-letter list with
--status dead), get (with its attempts), cancel, retry."""

from __future__ import annotations

import json
from typing import Any

import click

from orva_cli.client import CliError
from orva_cli.context import App, json_option, pass_app
from orva_cli.output import Col

JOB_COLUMNS = (
    Col("ID", "id"),
    Col("FUNCTION", "function_name"),
    Col("STATUS", "status"),
    Col("ATTEMPTS", "attempts"),
    Col("MAX", "max_attempts"),
    Col("RUN AT", "run_at"),
    Col("CREATED", "created_at"),
)
ATTEMPT_COLUMNS = (
    Col("#", "attempt"),
    Col("OUTCOME", "outcome"),
    Col("STATUS", "status_code"),
    Col("EXECUTION", "execution_id"),
    Col("ERROR", "error_text", flex=True),
    Col("STARTED", "started_at"),
)
STATUSES = ("pending", "running", "failed", "succeeded", "dead", "cancelled")


@click.group()
def jobs() -> None:
    """Queue functions to run later, with retries (handlers use orva.jobs).

    \b
    Statuses: pending, running, failed (an attempt failed; retried after a back-off),
    succeeded, dead (every attempt failed: the dead-letter list), cancelled.

    \b
    Examples:
      orva jobs enqueue hello '{"user": 42}' --max-attempts 5
      orva jobs list --status dead
      orva jobs retry job_0190...
    """


def _show_job(app: App, job: dict[str, Any]) -> None:
    def render(j: dict[str, Any]) -> None:
        fields = ["id", "function_name", "status", "attempts", "max_attempts", "run_at", "trigger", "source"]
        fields += [f for f in ("idempotency_key", "finished_at") if j.get(f)]
        app.out.record(j, fields)
        if j.get("last_error"):
            app.out.text(f"last error: {j['last_error']['code']}: {j['last_error']['message']}")
        attempts = j.get("attempts_list") or []
        if attempts:
            rows = [
                a | {"error_text": f"{a['error']['code']}: {a['error']['message']}" if a.get("error") else ""}
                for a in attempts
            ]
            app.out.table(rows, ATTEMPT_COLUMNS, title="attempts")

    app.out.show(job, render)


@jobs.command("enqueue")
@click.argument("function")
@click.argument("payload", required=False)
@click.option("--at", "scheduled_at", help="Run at this RFC 3339 time (default: now).")
@click.option(
    "--max-attempts", type=click.IntRange(1, 25), help="Attempts before the job is dead (default 3)."
)
@click.option(
    "--idempotency-key", help="A second enqueue with this key (within the window) returns the same job."
)
@click.option(
    "--window", "window_s", type=click.FloatRange(1, 30 * 86400), help="The key's window in seconds."
)
@json_option
@pass_app
def enqueue(
    app: App,
    function: str,
    payload: str | None,
    scheduled_at: str | None,
    max_attempts: int | None,
    idempotency_key: str | None,
    window_s: float | None,
) -> None:
    """Queue a job for FUNCTION with PAYLOAD (JSON; the handler gets it as the request body).

    \b
    Examples:
      orva jobs enqueue hello '{"user": 42}'
      orva jobs enqueue hello '"x"' --at 2030-01-01T09:00:00Z --idempotency-key daily-report
    """
    body: dict[str, Any] = {"function": function}
    if payload is not None:
        try:
            body["payload"] = json.loads(payload)
        except ValueError:
            raise CliError(
                "VALIDATION",
                f"PAYLOAD is not JSON: {payload[:80]!r}",
                hint=f"quote a string as JSON ('\"{payload[:20]}\"'), e.g. orva jobs enqueue {function} '{{\"a\": 1}}'",
            ) from None
    for name, value in (
        ("scheduled_at", scheduled_at),
        ("max_attempts", max_attempts),
        ("idempotency_key", idempotency_key),
        ("idempotency_window_s", window_s),
    ):
        if value is not None:
            body[name] = value
    job = app.post("/api/v1/jobs", body)
    app.out.show(
        job,
        lambda j: app.out.text(
            f"{j['id']}: {j['status']}" + ("" if j.get("created", True) else " (existing job for this key)")
        ),
    )


@jobs.command("list")
@click.option("--function", "function", help="Only this function's jobs (name or id).")
@click.option(
    "--status", type=click.Choice(STATUSES), help="Only jobs in this status (dead: the dead letters)."
)
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="At most this many."
)
@json_option
@pass_app
def list_jobs(app: App, function: str | None, status: str | None, limit: int) -> None:
    """List jobs, newest first.

    \b
    Examples:
      orva jobs list --function hello
      orva jobs list --status dead
    """
    params: dict[str, Any] = {"limit": min(limit, 500)}
    if function:
        params["function_id"] = function
    if status:
        params["status"] = status
    items: list[dict[str, Any]] = []
    for job in app.client.pages("/api/v1/jobs", "jobs", params):
        items.append(job)
        if len(items) >= limit:
            break
    app.out.show(items, lambda rows: app.out.table(rows, JOB_COLUMNS))


@jobs.command("get")
@click.argument("job_id")
@json_option
@pass_app
def get(app: App, job_id: str) -> None:
    """Show a job and its attempts (each an execution: orva logs FUNCTION --execution ID).

    \b
    Example:
      orva jobs get job_0190...
    """
    _show_job(app, app.get(f"/api/v1/jobs/{job_id}"))


@jobs.command("cancel")
@click.argument("job_id")
@json_option
@pass_app
def cancel(app: App, job_id: str) -> None:
    """Cancel a pending or failed job (a running one: its attempt finishes, no other follows).

    \b
    Example:
      orva jobs cancel job_0190...
    """
    _show_job(app, app.delete(f"/api/v1/jobs/{job_id}"))


@jobs.command("retry")
@click.argument("job_id")
@json_option
@pass_app
def retry(app: App, job_id: str) -> None:
    """Put a dead, failed or cancelled job back to pending, due now, with a fresh round of attempts.

    \b
    Example:
      orva jobs retry job_0190...
    """
    _show_job(app, app.post(f"/api/v1/jobs/{job_id}/retry", {}))


commands = [jobs]
