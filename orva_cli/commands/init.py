"""`orva init`: write a starter function folder that `orva deploy` takes as it is."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click

from orva_cli.client import CliError
from orva_cli.context import App, json_option, pass_app

PYTHON_HANDLER = '''\
"""An Orva function: orvad calls handler(event, context) once per HTTP request.

Try it:  orva invoke NAME --path '/?name=orva'   or   orva invoke NAME --data '{"name": "orva"}'
"""

import json


def handler(event, context):
    name = event["query"].get("name")  # /?name=orva
    if name is None and event["body"]:  # or a JSON body {"name": "orva"}
        try:
            name = json.loads(event["body"]).get("name")
        except (ValueError, AttributeError):
            pass  # not a JSON object: keep the default
    name = name or "world"
    print(f"saying hello to {name}")  # what a handler prints shows in `orva logs NAME`
    return {"hello": name}  # a dict answers 200 application/json
'''

NODE_HANDLER = """\
// An Orva function: orvad calls handler(event, context) once per HTTP request.
//
// Try it:  orva invoke NAME --path '/?name=orva'   or   orva invoke NAME --data '{"name": "orva"}'

exports.handler = async (event, context) => {
  let name = event.query.name; // /?name=orva
  if (name === undefined && event.body) { // or a JSON body {"name": "orva"}
    try {
      name = JSON.parse(event.body).name;
    } catch (err) {
      // not JSON: keep the default
    }
  }
  name = name || 'world';
  console.log(`saying hello to ${name}`); // what a handler prints shows in `orva logs NAME`
  return { hello: name }; // an object answers 200 application/json
};
"""

STARTERS = {"python": ("handler.py", PYTHON_HANDLER), "node": ("handler.js", NODE_HANDLER)}


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


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--runtime",
    type=click.Choice(sorted(STARTERS)),
    default="python",
    show_default=True,
    help="The language of the starter handler.",
)
@json_option
@pass_app
def init(app: App, directory: Path, runtime: str) -> None:
    """Write a starter function folder and print how to deploy it.

    DIR is created when missing; the suggested function name is DIR's name made valid (1..63
    characters of a-z 0-9 - _, starting with a letter).

    The handler answers {"hello": NAME}, NAME from ?name= or a JSON body's "name" (default
    "world"). A file already in DIR is never overwritten (one with the very same content is
    left as it is).

    \b
    Examples:
      orva init hello
      orva init api --runtime node
    """
    filename, text = STARTERS[runtime]
    target = directory / filename
    if target.exists() and (not target.is_file() or target.read_text(errors="replace") != text):
        raise CliError(
            "FILE_EXISTS",
            f"{target} exists already; orva init never overwrites a file",
            f"pick a new folder (`orva init NEW_DIR`) or deploy this one: "
            f"`orva deploy {shown_path(directory)} --name {function_name(directory)}`",
        )
    written = not target.exists()
    if written:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    name = function_name(directory)
    steps = [
        f"orva deploy {shown_path(directory)} --name {name}",
        f"orva invoke {name} --path '/?name=orva'",
        f"orva logs {name}",
    ]

    def render(_: object) -> None:
        app.out.text(f"{'wrote' if written else 'kept (unchanged)'} {target} ({runtime}); next:")
        for step in steps:
            app.out.text(f"  {step}")

    app.out.show(
        {
            "directory": str(directory),
            "file": str(target),
            "runtime": runtime,
            "name": name,
            "written": written,
            "next": steps,
        },
        render,
    )


commands = [init]
