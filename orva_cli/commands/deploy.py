"""`orva deploy`: pack a folder, upload it, and follow the build log live until it succeeds or fails."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orva_cli.client import CliError
from orva_cli.commands.functions import deployment_id
from orva_cli.context import App, fn_path, function_argument, json_option, pass_app

if TYPE_CHECKING:
    from orva_cli.pack import Packed

ENTRYPOINTS = {
    "python": ("handler.py", "main.py"),
    "node": ("handler.js", "handler.mjs", "handler.cjs", "index.js"),
}
STREAM_ATTEMPTS = 3  # connections to the build stream before giving up on it
TAIL_LINES = 30  # of a failed build's stored log, shown when the live stream showed none
LINE_STYLES = {"system": "cyan", "stderr": "yellow"}


def language(runtime: str) -> str:
    return "node" if runtime.startswith("node") else "python"


def guess_runtime(files: list[str]) -> str | None:
    if any(f in files for f in ("requirements.txt", *ENTRYPOINTS["python"])):
        return "python"
    if any(f in files for f in ("package.json", *ENTRYPOINTS["node"])):
        return "node"
    return None


def pick_entrypoint(runtime: str, files: list[str]) -> str:
    candidates = ENTRYPOINTS[language(runtime)]
    return next((c for c in candidates if c in files), candidates[0])


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--name",
    required=True,
    help="The function to deploy into; created when it does not exist (a new name: 1..63 characters of "
    "a-z 0-9 - _, starting with a letter).",
)
@click.option(
    "--runtime", help="python or node (or a versioned id) [default: the function's, or guessed from DIR]."
)
@click.option(
    "--entrypoint", help="The handler file in DIR [default: the function's, or handler.py / handler.js]."
)
@json_option
@pass_app
def deploy(app: App, directory: Path, name: str, runtime: str | None, entrypoint: str | None) -> None:
    """Pack DIR and deploy it, following the build live.

    The folder is uploaded as a new version of function --name, created when it does not exist.

    Files named in DIR/.orvaignore (gitignore syntax) stay behind, as do .git/, node_modules/,
    .venv/ and __pycache__/. A requirements.txt or package.json in DIR is installed during the
    build. Exits 1 when the build fails; the old version keeps serving.

    \b
    Example:
      orva deploy ./hello --name hello --runtime python
    """
    from orva_cli.pack import IGNORE_FILE, pack  # pathspec is loaded only by the command that packs

    existing = app.client.send("GET", fn_path(name))
    if existing.status_code not in (200, 404):
        raise app.client.failure(existing)
    fn: dict[str, Any] | None = existing.json() if existing.status_code == 200 else None
    with app.out.spinner(f"packing {directory}"):
        packed = pack(directory)
    runtime = runtime or (fn["runtime"] if fn else guess_runtime(packed.files))
    if runtime is None:
        raise click.UsageError(
            f"cannot tell the runtime of {directory}; pass --runtime python or --runtime node"
        )
    entrypoint = entrypoint or (fn["entrypoint"] if fn else pick_entrypoint(runtime, packed.files))
    if entrypoint not in packed.files:
        raise click.UsageError(
            f"{directory} has no {entrypoint} to serve (left out by {IGNORE_FILE}?); pass --entrypoint FILE"
        )
    _ensure_function(app, name, fn, runtime, entrypoint)
    dep = _upload(app, name, packed)
    final, shown = follow_build(app, dep, name)
    if final["status"] == "superseded":
        app.out.note(
            f"deployment {final['id']} was built, but a newer deployment of {name} is active: "
            "it was not activated",
            "yellow",
        )
    elif final["status"] != "succeeded":
        if not shown:  # the stream carried no line (it was lost): show the end of the stored log
            for line in stored_log(app, final["id"])[-TAIL_LINES:]:
                app.out.note(f"  {line['line']}", LINE_STYLES.get(line["stream"]))
        if app.out.json:
            app.out.dump(final)
        raise CliError(
            "BUILD_FAILED",
            f"version {final['version']} of {name} did not build: {final.get('error_message')}",
            f"fix it and deploy again; the whole log: `orva build-log {name} {final['version']}`; "
            "the version serving before, if any, still does",
            details={"deployment_id": final["id"], "function": name},
        )
    app.out.show(
        final,
        lambda d: app.out.text(
            f"deployed {name} version {d['version']} (code hash {d['code_hash'][:12]}) in {d['duration_ms']} ms",
            "green",
        ),
    )


def _ensure_function(app: App, name: str, fn: dict[str, Any] | None, runtime: str, entrypoint: str) -> None:
    """Create the function, or bring its runtime and entrypoint in line with this deploy."""
    if fn is None:
        app.out.note(f"creating function {name} ({runtime}, {entrypoint})")
        app.post("/api/v1/functions", {"name": name, "runtime": runtime, "entrypoint": entrypoint})
        return
    changes = {k: v for k, v in (("runtime", runtime), ("entrypoint", entrypoint)) if fn[k] != v}
    if changes:
        app.out.note("updating " + ", ".join(f"{k} to {v}" for k, v in changes.items()))
        app.put(fn_path(name), changes)


def _upload(app: App, name: str, packed: Packed) -> dict[str, Any]:
    size = len(packed.data)
    with app.out.spinner(f"uploading {len(packed.files)} files ({size / 1024:.1f} KiB)"):
        response = app.client.send(
            "POST",
            fn_path(name, "deploy"),
            content=packed.data,
            headers={"Content-Type": "application/gzip"},
            timeout=300,
        )
    if response.status_code >= 400:
        raise app.client.failure(response)
    dep: dict[str, Any] = response.json()
    app.out.note(f"uploaded {len(packed.files)} files ({size / 1024:.1f} KiB): deployment {dep['id']}")
    return dep


FINAL = ("succeeded", "failed", "superseded")  # superseded: built, a newer deployment won


def follow_build(app: App, dep: dict[str, Any], name: str) -> tuple[dict[str, Any], int]:
    """Print the build log as orvad writes it (to stderr); the final deployment record and how many
    log lines were shown."""
    shown, phases, final = 0, set(), None  # what a resumed stream replays is not shown twice
    with app.out.spinner(f"building {name}: {dep['phase']}") as say:
        for attempt in range(STREAM_ATTEMPTS):
            try:
                for event, data in app.client.events(f"/api/v1/deployments/{dep['id']}/stream"):
                    if event == "log" and data["seq"] > shown:
                        shown = data["seq"]
                        app.out.note(f"  {data['line']}", LINE_STYLES.get(data["stream"]))
                    elif event == "phase" and data["phase"] not in phases:
                        phases.add(data["phase"])
                        app.out.note(f"- {data['phase']}", "bold")
                        say(f"building {name}: {data['phase']}")
                    elif event in FINAL:
                        final = data
            except CliError as exc:  # a dropped stream is resumed; the build goes on without us
                if exc.code != "CONNECTION_FAILED" or attempt == STREAM_ATTEMPTS - 1:
                    raise
            if final is not None:
                return final, shown
    record: dict[str, Any] = app.get(f"/api/v1/deployments/{dep['id']}")
    if record["status"] not in FINAL:
        raise CliError(
            "STREAM_LOST",
            f"the build stream of deployment {dep['id']} ended early",
            f"the build goes on; check it with `orva deployments {name}`",
        )
    return record, shown


def stored_log(app: App, dep_id: str) -> list[dict[str, Any]]:
    """Every stored line of a deployment's build log ({seq, stream, line, ts}), in order."""
    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        page = app.get(f"/api/v1/deployments/{dep_id}/logs", after_seq=after, limit=5000)
        lines += page["lines"]
        if page["next_after_seq"] is None:
            return lines
        after = page["next_after_seq"]


@click.command("build-log")
@function_argument
@click.argument("deployment_ref", metavar="[DEPLOYMENT]", required=False)
@json_option
@pass_app
def build_log(app: App, name: str, deployment_ref: str | None) -> None:
    """Print a deployment's build log (the newest deployment's by default).

    DEPLOYMENT is a version number, a deployment id or a unique prefix of one (see
    `orva deployments NAME`). --json prints {deployment_id, status, lines}.

    \b
    Examples:
      orva build-log hello
      orva build-log hello 3
    """
    if deployment_ref is None:
        newest = app.get(fn_path(name, "deployments"), limit=1)["deployments"]
        if not newest:
            raise CliError(
                "NOT_DEPLOYED",
                f"function {name} has no deployments",
                f"deploy code first: `orva deploy DIR --name {name}`",
            )
        dep_id = str(newest[0]["id"])
    else:
        dep_id = deployment_id(app, name, deployment_ref)
    dep = app.get(f"/api/v1/deployments/{dep_id}")
    lines = stored_log(app, dep_id)
    if app.out.json:
        app.out.dump({"deployment_id": dep_id, "status": dep["status"], "lines": lines})
        return
    app.out.note(f"version {dep['version']} of {name} ({dep_id}): {dep['status']}", "bold")
    for line in lines:
        app.out.text(line["line"], LINE_STYLES.get(line["stream"]))


commands = [deploy, build_log]
