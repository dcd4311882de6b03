"""`orva init`: write a starter function folder that `orva deploy` takes as it is."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import click

from orva_cli.client import CliError
from orva_cli.context import App, json_option, pass_app

LANGUAGES = ("python", "node")


def _catalog() -> Any:
    """The starter functions shipped in the package (orvad/templates), the same files orvad serves at
    GET /api/v1/templates; loaded only by the commands that need them."""
    from orvad import templates

    return templates


def function_name(folder: Path) -> str:
    """A valid function name from a folder's name (orvad's rule: 1..63 of a-z 0-9 - _, a letter
    first): lower case, other characters as '-'."""
    base = re.sub(r"[^a-z0-9_-]+", "-", folder.resolve().name.lower()).strip("-_") or "hello"
    if not base[0].isalpha():
        base = "fn-" + base
    return base[:63].rstrip("-_")


def shown_path(directory: Path) -> str:
    """DIR as the user would type it to deploy: ./hello for a bare relative name."""
    text = str(directory)
    if not directory.is_absolute() and not text.startswith("."):
        text = "./" + text
    return shlex.quote(text)


def _invoke_step(name: str, example: dict[str, Any] | None) -> str:
    """`orva invoke` as the template's example call."""
    example = example or {}
    argv = ["orva", "invoke", name]
    method, body = example.get("method", "GET"), example.get("body")
    if example.get("path", "/") != "/":
        argv += ["--path", example["path"]]
    if body is not None:
        argv += ["--data", body if isinstance(body, str) and body.startswith("@") else json.dumps(body)]
    if method != ("POST" if body is not None else "GET"):
        argv += ["-X", method]
    for key, value in (example.get("headers") or {}).items():
        if key.lower() != "content-type" or not isinstance(body, dict):
            argv += ["-H", f"{key}: {value}"]
    return shlex.join(argv)


def _settings_step(name: str, settings: dict[str, Any], schema_file: Path | None) -> str | None:
    """`orva functions update` with the settings the template needs, or None when it needs none."""
    argv = ["orva", "functions", "update", name]
    flags = {"description": "--description", "network_mode": "--network-mode", "memory_mb": "--memory-mb"}
    flags |= {"cpus": "--cpus", "timeout_ms": "--timeout-ms"}
    for field, flag in flags.items():
        if field in settings:
            argv += [flag, str(settings[field])]
    for target in settings.get("may_invoke", []):
        argv += ["--may-invoke", target]
    if schema_file is not None:
        argv += ["--input-schema", str(schema_file)]
    return shlex.join(argv) if len(argv) > 4 else None


def _next_steps(template: Any, directory: Path, name: str, schema_file: Path | None) -> list[str]:
    steps = [f"orva deploy {shown_path(directory)} --name {name}"]
    settings = _settings_step(name, template.settings, schema_file)
    if settings:
        steps.append(settings)
    steps += [f"orva secrets set {name} {e.name}" for e in template.env if e.secret]
    if template.name.startswith("hello-"):
        steps.append(f"orva invoke {name} --path '/?name=orva'")  # the quick start's own line
    else:
        steps.append(_invoke_step(name, template.example))
    steps.append(f"orva logs {name}")
    return steps


def _check_free(directory: Path, files: dict[str, str]) -> None:
    if (directory.exists() or directory.is_symlink()) and not directory.is_dir():
        raise CliError(
            "FILE_EXISTS",
            f"{directory} exists and is not a folder (a file, or a link to nowhere)",
            "pick a new folder: `orva init NEW_DIR`",
        )
    for filename, text in files.items():
        target = directory / filename
        dangling = target.is_symlink() and not target.exists()  # writing would create the link's target
        if dangling or (
            target.exists() and (not target.is_file() or target.read_text(errors="replace") != text)
        ):
            raise CliError(
                "FILE_EXISTS",
                f"{target} exists already{' (a link to nowhere)' if dangling else ''}; orva init never "
                "overwrites a file nor writes through a link",
                f"pick a new folder (`orva init NEW_DIR`) or deploy this one: "
                f"`orva deploy {shown_path(directory)} --name {function_name(directory)}`",
            )


def _write_new(target: Path, text: str) -> None:
    """Create ``target`` with ``text``: never through a link, never over a file (one made since the check)."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    except FileExistsError:
        raise CliError(
            "FILE_EXISTS",
            f"{target} exists already; orva init never overwrites a file",
            "pick a new folder: `orva init NEW_DIR`",
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--runtime",
    type=click.Choice(LANGUAGES),
    help="The language of the hello starter [default: python]; with --template, the template's.",
)
@click.option(
    "--template",
    "-t",
    "template_name",
    metavar="TEMPLATE",
    help="Start from this template (`orva templates list`) [default: hello-python or hello-node].",
)
@json_option
@pass_app
def init(app: App, directory: Path, runtime: str | None, template_name: str | None) -> None:
    """Write a starter function folder and print how to deploy it.

    DIR is created when missing; the suggested function name is DIR's name made valid (1..63
    characters of a-z 0-9 - _, starting with a letter).

    Without --template the handler answers {"hello": NAME}, NAME from ?name= or a JSON body's
    "name" (default "world"). A template writes its handler file and its requirements.txt or
    package.json (and input_schema.json when it declares one); the next steps print the settings
    and secrets it needs. A file already in DIR is never overwritten (one with the very same
    content is left as it is).

    \b
    Examples:
      orva init hello
      orva init api --runtime node
      orva init hooks --template github-webhook-python
    """
    catalog = _catalog()
    if template_name is None:
        template = catalog.default_for(runtime or "python")
    else:
        template = catalog.find(template_name)
        if template is None:
            raise CliError(
                "NOT_FOUND",
                f"no template {template_name}",
                "`orva templates list` shows the templates",
                details={"template": template_name},
            )
        if runtime is not None and runtime != template.runtime:
            raise click.UsageError(f"template {template.name} is {template.runtime}, not {runtime}")
    files = dict(template.files)
    schema = template.settings.get("input_schema")
    schema_file = directory / "input_schema.json" if schema is not None else None
    if schema is not None:
        files["input_schema.json"] = json.dumps(schema, indent=2) + "\n"
    _check_free(directory, files)
    written = [filename for filename in files if not (directory / filename).exists()]
    directory.mkdir(parents=True, exist_ok=True)
    for filename in written:
        _write_new(directory / filename, files[filename])
    name = function_name(directory)
    steps = _next_steps(template, directory, name, schema_file)
    target = directory / template.entrypoint

    def render(_: object) -> None:
        shown = ", ".join(str(directory / f) for f in written) if written else None
        what = template.runtime if template_name is None else f"template {template.name}, {template.runtime}"
        app.out.text(f"{'wrote ' + shown if shown else 'kept (unchanged) ' + str(target)} ({what}); next:")
        for step in steps:
            app.out.text(f"  {step}")

    app.out.show(
        {
            "directory": str(directory),
            "file": str(target),
            "files": [str(directory / f) for f in files],
            "template": template.name,
            "runtime": template.runtime,
            "name": name,
            "written": bool(written),
            "next": steps,
        },
        render,
    )


@click.group()
def templates() -> None:
    """The starter functions `orva init --template` writes (the same catalog as the dashboard's).

    \b
    Examples:
      orva templates list
      orva templates show github-webhook-python
    """


@templates.command("list")
@click.option("--runtime", type=click.Choice(LANGUAGES), help="Only this language's templates.")
@json_option
@pass_app
def list_templates(app: App, runtime: str | None) -> None:
    """List the templates: name, runtime and what each does.

    \b
    Example:
      orva templates list --runtime node
    """
    found = [t.summary() for t in _catalog().catalog().values() if runtime in (None, t.runtime)]

    def render(_: object) -> None:
        for t in found:
            app.out.text(f"{t['name']:<26} {t['runtime']:<7} {t['title']}")

    app.out.show({"templates": found}, render)


@templates.command("show")
@click.argument("template_name", metavar="TEMPLATE")
@json_option
@pass_app
def show_template(app: App, template_name: str) -> None:
    """Show a template: what it does, the settings, env and secrets it needs, and its files.

    \b
    Example:
      orva templates show llm-relay-python
    """
    template = _catalog().find(template_name)
    if template is None:
        raise CliError(
            "NOT_FOUND",
            f"no template {template_name}",
            "`orva templates list` shows the templates",
            details={"template": template_name},
        )
    data = template.to_json()

    def render(_: object) -> None:
        app.out.text(f"{template.name} ({template.runtime}): {template.title}")
        app.out.text(f"  {template.description}")
        for key, value in template.settings.items():
            app.out.text(f"  setting {key}: {json.dumps(value)}")
        for env in template.env:
            kind = "secret" if env.secret else "env"
            app.out.text(f"  {kind} {env.name}{' (required)' if env.required else ''}: {env.description}")
        app.out.text(f"  files: {', '.join(template.files)}")
        app.out.text(f"  start: orva init DIR --template {template.name}")

    app.out.show(data, render)


commands = [init, templates]
