"""`orva ai`: the AI assistant (issue 22). Needs an admin key.

This file has two regions: `orva ai providers ...` (provider configs) first, then the assistant's own
commands (chat, conversations, settings) below.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any
from urllib.parse import quote

import click

from orva_cli.client import CliError
from orva_cli.context import App, json_option, pass_app
from orva_cli.hints import for_cli
from orva_cli.output import Col


@click.group()
def ai() -> None:
    """The AI assistant: its providers, chats and settings (needs an admin key).

    \b
    Examples:
      orva ai providers add claude --kind anthropic
      orva ai providers add local --kind openai --base-url http://127.0.0.1:11434/v1 --no-key
      orva ai providers test local
    """


# ==== providers: `orva ai providers list|add|remove|models|test` ============================================

PROVIDERS = "/api/v1/ai/providers"
PROVIDER_COLUMNS = (
    Col("LABEL", "label", flex=True),
    Col("KIND", "kind"),
    Col("BASE_URL", "base_url_shown", flex=True),
    Col("KEY", "key_shown"),
    Col("ID", "id", short=True),
)


def _provider_path(provider: str, *rest: str) -> str:
    return "/".join((PROVIDERS, quote(provider, safe=""), *rest))  # a label may hold ? # % or spaces


def _shown(p: dict[str, Any]) -> dict[str, Any]:
    return {
        **p,
        "base_url_shown": p.get("base_url") or "(the provider's own)",
        "key_shown": ("…" + p["key_hint"] if p.get("key_hint") else "set") if p.get("has_key") else "none",
    }


def _read_key(key_stdin: bool) -> str:
    """The API key from the first line of stdin (--key-stdin) or a hidden prompt; never from argv."""
    if key_stdin:
        return sys.stdin.readline().strip()
    return str(
        click.prompt("API key (hidden; empty for none)", hide_input=True, default="", show_default=False)
    )


@ai.group()
def providers() -> None:
    """Provider configs: Anthropic, OpenAI or any OpenAI-compatible endpoint (Ollama, vLLM, LM Studio, OpenRouter).

    API keys are stored encrypted in orvad and never shown again (a list shows their last 4 characters).

    \b
    Examples:
      orva ai providers add claude --kind anthropic          # the key at a hidden prompt
      printf %s "$OPENAI_API_KEY" | orva ai providers add openai --kind openai --key-stdin
      orva ai providers add local --kind openai --base-url http://127.0.0.1:11434/v1 --no-key
    """


@providers.command("list")
@json_option
@pass_app
def providers_list(app: App) -> None:
    """List provider configs (never their keys).

    \b
    Example:
      orva ai providers list
    """
    items = app.get(PROVIDERS)["providers"]
    app.out.show(items, lambda rows: app.out.table([_shown(p) for p in rows], PROVIDER_COLUMNS))


@providers.command("add")
@click.argument("label")
@click.option(
    "--kind",
    type=click.Choice(["anthropic", "openai"]),
    help="anthropic (the Messages API) or openai (any OpenAI-compatible endpoint). Needed for a new provider.",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="The endpoint, e.g. http://127.0.0.1:11434/v1 for a local Ollama [default: the provider's own].",
)
@click.option("--key-stdin", is_flag=True, help="Read the API key from the first line of stdin.")
@click.option("--no-key", is_flag=True, help="No API key (a local server), or remove the one stored.")
@json_option
@pass_app
def providers_add(
    app: App, label: str, kind: str | None, base_url: str | None, key_stdin: bool, no_key: bool
) -> None:
    """Add provider LABEL, or change it if LABEL exists (what is left out is kept).

    The API key is read at a hidden prompt on a terminal, or from stdin with --key-stdin: never from
    the command line. Without a terminal and without --key-stdin, no key is sent (a stored one is kept).

    \b
    Examples:
      orva ai providers add claude --kind anthropic
      printf %s "$KEY" | orva ai providers add claude --key-stdin      # a new key for claude
      orva ai providers add local --kind openai --base-url http://127.0.0.1:11434/v1 --no-key
    """
    if key_stdin and no_key:
        raise CliError("VALIDATION", "--key-stdin and --no-key say opposite things", hint="pass one of them")
    body: dict[str, Any] = {"label": label}
    if kind:
        body["kind"] = kind
    if base_url is not None:
        body["base_url"] = base_url or None
    if no_key:
        body["api_key"] = None
    elif key_stdin or sys.stdin.isatty():
        body["api_key"] = _read_key(key_stdin) or None
    answer = app.post(PROVIDERS, body)

    def render(p: dict[str, Any]) -> None:
        key = f"key …{p['key_hint']}" if p.get("key_hint") else ("a key" if p.get("has_key") else "no key")
        app.out.text(
            f"saved provider {p['label']} ({p['kind']}, {p.get('base_url') or 'its own endpoint'}, {key}); "
            f"check it with `orva ai providers test {p['label']}`"
        )

    app.out.show(answer, render)


@providers.command("remove")
@click.argument("provider")
@json_option
@pass_app
def providers_remove(app: App, provider: str) -> None:
    """Remove PROVIDER (a label or id) and its key. Conversations that used it stay.

    \b
    Example:
      orva ai providers remove local
    """
    answer = app.delete(_provider_path(provider))
    app.out.show(answer, lambda _: app.out.text(f"removed provider {provider}"))


@providers.command("models")
@click.argument("provider")
@json_option
@pass_app
def providers_models(app: App, provider: str) -> None:
    """List the models PROVIDER's endpoint offers (one per line).

    \b
    Example:
      orva ai providers models claude
    """
    answer = app.get(_provider_path(provider, "models"))
    app.out.show(answer, lambda a: click.echo("\n".join(a["models"])) if a["models"] else None)


@providers.command("test")
@click.argument("provider")
@click.option("--model", "-m", help="Also send a short request to this model.")
@json_option
@pass_app
def providers_test(app: App, provider: str, model: str | None) -> None:
    """Test the connection to PROVIDER: list its models (and, with --model, ask that model for a word).

    Exits non-zero with the provider's error when it fails.

    \b
    Examples:
      orva ai providers test claude
      orva ai providers test local --model llama3.2
    """
    answer = app.post(_provider_path(provider, "test"), {"model": model} if model else {})

    def render(a: dict[str, Any]) -> None:
        count = len(a["models"])
        app.out.text(f"ok: {provider} answered in {a['latency_ms']:.0f} ms with {count} model(s)")
        if "model" in a:
            m = a["model"]
            app.out.text(f"{m['name']} replied {m['reply']!r} in {m['latency_ms']:.0f} ms")

    app.out.show(answer, render)


# ==== the assistant: chat, conversations, settings (below) ====================================================
AI = "/api/v1/ai"
CONVERSATION_COLUMNS = (
    Col("TITLE", "title", flex=True),
    Col("MODEL", "model"),
    Col("TOKENS", "tokens"),
    Col("UPDATED", "updated_at"),
    Col("ID", "id", short=True),
)
NO_MODEL_HINT = (
    "choose the assistant's provider and model: `orva ai settings --provider LABEL --model NAME` "
    "(`orva ai providers list` and `orva ai providers models LABEL` show them)"
)
RESULT_CHARS = 400  # of a tool result, printed after a call (--json has it whole)


def _usage(record: dict[str, Any]) -> str:
    u = record.get("usage") or {}
    return f"{u.get('input_tokens', 0)} in / {u.get('output_tokens', 0)} out"


def _args_text(arguments: Any) -> str:
    return json.dumps(arguments, ensure_ascii=False, separators=(", ", ": "))


# Control characters in what the model or a tool wrote (ESC sequences could clear the screen, retitle the
# terminal or overwrite lines to hide text): never sent to the terminal. Newlines and tabs stay.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _plain(text: str) -> str:
    return _CONTROL.sub("", text)


def _short(text: str, limit: int = RESULT_CHARS) -> str:
    text = " ".join(_plain(str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Turn:
    """Prints one conversation's streamed turns and answers the approvals they wait for.

    Text goes to stdout as it arrives (the reply is the command's result); tool calls, their results, thinking
    (with --show-thinking) and the token counts go to stderr. Under --json every frame is one JSON line on
    stdout instead. A stream is read to its end; a call held for approval is then approved or rejected
    (``decide``) and the resumed turn is read the same way, until the turn ends without waiting."""

    def __init__(self, app: App, decide: Any, show_thinking: bool) -> None:
        self.app, self.decide, self.show_thinking = app, decide, show_thinking
        self.conversation_id: str | None = None
        self.texts: dict[str, str] = {}  # message id -> text printed so far (a re-attached stream replays)
        self.open_line = False  # stdout holds reply text not yet ended by a newline
        self.seen: set[tuple[str, str]] = set()  # (event, id) of the calls already shown
        self.usage = [0, 0]

    def _end_line(self) -> None:
        if self.open_line:
            click.echo()
            self.open_line = False

    def _note(self, text: str, style: str = "dim") -> None:
        self._end_line()
        self.app.out.note(_plain(text), style)

    def follow(self, method: str, path: str, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Read one stream to its end; returns the calls it left awaiting approval."""
        self.held: list[dict[str, Any]] = []
        self.replayed: dict[str, str] = {}  # message id -> its text in this stream
        handlers = {
            "message_start": self._start,
            "delta": self._delta,
            "thinking": self._thinking,
            "tool_call": self._call,
            "tool_result": self._result,
            "awaiting_approval": self._held,
            "message_end": self._end,
            "error": self._error,
        }
        for event, data in self.app.client.events(path, method=method, body=body):
            if not isinstance(data, dict):
                continue
            if self.app.out.json:
                self.app.out.line({"event": event, "data": data})
            if event in handlers:
                handlers[event](data)
        self._end_line()
        return self.held

    def _start(self, data: dict[str, Any]) -> None:
        self.conversation_id = data.get("conversation_id") or self.conversation_id
        self.replayed[data["message_id"]] = ""

    def _delta(self, data: dict[str, Any]) -> None:
        mid = data["message_id"]
        text = self.replayed[mid] = self.replayed.get(mid, "") + data["text"]
        done = self.texts.get(mid, "")
        if len(text) <= len(done):
            return  # a re-attached stream replays what is already printed
        self.texts[mid] = text
        if not self.app.out.json:
            new = text[len(done) :]
            sys.stdout.write(_plain(new))
            sys.stdout.flush()
            self.open_line = not new.endswith("\n")

    def _thinking(self, data: dict[str, Any]) -> None:
        if self.show_thinking and not self.app.out.json:
            self.app.out.parts([(_plain(data["text"]), "dim italic")], err=True)

    def _once(self, kind: str, data: dict[str, Any]) -> bool:
        key = (kind, str(data.get("id")))
        if key in self.seen:
            return False
        self.seen.add(key)
        return not self.app.out.json

    def _call(self, data: dict[str, Any]) -> None:
        if self._once("call", data):
            wait = " (waits for approval)" if data.get("needs_approval") else ""
            self._note(f"→ tool {data['name']} {_args_text(data.get('arguments'))}{wait}", "cyan")

    def _result(self, data: dict[str, Any]) -> None:
        if self._once("result", data):
            bad = bool(data.get("is_error"))
            self._note(f"{'✗' if bad else '←'} {_short(data.get('result') or '')}", "red" if bad else "dim")

    def _held(self, data: dict[str, Any]) -> None:
        key = ("held", str(data.get("id")))
        if key not in self.seen:
            self.seen.add(key)
            self.held.append(data)

    def _end(self, data: dict[str, Any]) -> None:
        u = data.get("usage") or {}
        self.usage[0] += u.get("input_tokens", 0)
        self.usage[1] += u.get("output_tokens", 0)
        if data.get("stop_reason") == "cancelled" and not self.app.out.json:
            self._note("(stopped)")

    def _error(self, data: dict[str, Any]) -> None:
        self._end_line()
        raise _turn_error(data)

    def run(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        try:
            self._run(method, path, body)
        except CliError as exc:
            if exc.code == "VALIDATION" and exc.details.get("field") in ("provider_id", "model"):
                exc.hint = NO_MODEL_HINT  # refused before the stream: where to choose them, not which flag
            raise
        except KeyboardInterrupt:
            # Ctrl+C stops the reading only: the turn runs in orvad
            where = self.conversation_id or "ID"
            self._note(
                f"stopped reading; the reply goes on in orvad: `orva ai chat --attach {where}` follows it, "
                f"`orva ai cancel {where}` stops it",
                "yellow",
            )
            raise SystemExit(130) from None

    def _run(self, method: str, path: str, body: dict[str, Any] | None) -> None:
        held = self.follow(method, path, body)
        while held:
            call = held.pop(0)
            verdict = self.decide(call)
            if not self.app.out.json:
                self._note(f"{'approved' if verdict == 'approve' else 'rejected'} {call['name']}")
            held = self.follow("POST", f"{AI}/tool-calls/{call['id']}/{verdict}", {}) + held

    def summary(self) -> None:
        if self.conversation_id and not self.app.out.json:
            self._note(
                f"conversation {self.conversation_id} ({self.usage[0]} in / {self.usage[1]} out tokens); "
                f"go on with `orva ai chat --conversation {self.conversation_id} MESSAGE`"
            )


def _turn_error(data: dict[str, Any]) -> CliError:
    code = str(data.get("code") or "ERROR")
    details = data.get("details") or {}
    field = details.get("field") if isinstance(details, dict) else None
    hints = {
        "PROVIDER_ERROR": "check the provider with `orva ai providers test LABEL`, then `orva ai regenerate ID`",
        "STEP_LIMIT": "send a message to let it go on, or raise the cap: `orva ai settings --max-tool-steps N`",
        "TURN_INTERRUPTED": "orvad stopped mid-reply: `orva ai regenerate ID` runs it again",
        "TURN_RUNNING": "follow it with `orva ai chat --attach ID` or stop it with `orva ai cancel ID`",
    }
    if code == "VALIDATION" and field in ("provider_id", "model"):
        hint: str | None = NO_MODEL_HINT
    else:
        hint = hints.get(code) or for_cli(
            code, data.get("hint"), details if isinstance(details, dict) else {}
        )
    return CliError(code, str(data.get("message") or "the assistant failed"), hint, details=details)


def _decider(approve_all: bool, reject_writes: bool, app: App) -> Any:
    def decide(call: dict[str, Any]) -> str:
        if approve_all:
            return "approve"
        if reject_writes:
            return "reject"
        if not sys.stdin.isatty():
            raise CliError(
                "APPROVAL_NEEDED",
                f"the assistant wants to run {call['name']} {_args_text(call.get('arguments'))} and waits for "
                "your approval",
                f"answer in a terminal, pass --approve-all or --reject-writes, or decide later: "
                f"`orva ai approve {call['id']}` / `orva ai reject {call['id']}`",
            )
        app.out.note(f"the assistant wants to run {call['name']} {_args_text(call.get('arguments'))}", "bold")
        return "approve" if click.confirm("Approve?", default=False, err=True) else "reject"

    return decide


def _approval_options(f: Any) -> Any:
    f = click.option(
        "--show-thinking", is_flag=True, help="Print the model's thinking (on stderr) as it streams."
    )(f)
    f = click.option(
        "--reject-writes",
        is_flag=True,
        help="Reject every call that waits for approval (the model is told and carries on without it).",
    )(f)
    f = click.option(
        "--approve-all", is_flag=True, help="Approve every call that waits for approval, without asking."
    )(f)
    return f


def _read_message(message: str) -> str:
    if message == "-":
        return sys.stdin.read().strip()
    return message


@ai.command("chat")
@click.argument("message", required=False)
@click.option(
    "--conversation", "-c", "conversation", default=None, help="Go on with this conversation (an id)."
)
@click.option("--attach", default=None, metavar="ID", help="Follow the turn running in conversation ID.")
@click.option(
    "--provider",
    "provider_id",
    default=None,
    help="A provider (label or id) for this message (default: settings).",
)
@click.option(
    "--model", default=None, help="A model for this message (default: the conversation's or settings')."
)
@click.option("--thinking", type=click.Choice(["off", "low", "medium", "high"]), default=None)
@_approval_options
@json_option
@pass_app
def chat(
    app: App,
    message: str | None,
    conversation: str | None,
    attach: str | None,
    provider_id: str | None,
    model: str | None,
    thinking: str | None,
    approve_all: bool,
    reject_writes: bool,
    show_thinking: bool,
) -> None:
    """Send MESSAGE to the assistant and stream its reply (`-` reads it from stdin).

    Tool calls and their results are shown on stderr as they happen. A call that waits for approval is asked
    about in a terminal (or --approve-all / --reject-writes). Ctrl+C stops reading; the turn carries on in
    orvad (`orva ai chat --attach ID` follows it again, `orva ai cancel ID` stops it).

    \b
    Examples:
      orva ai chat "make a function that resizes images and put it on /thumb"
      orva ai chat -c 0193... "now add a test" --approve-all
      echo "list my functions" | orva ai chat -
    """
    if approve_all and reject_writes:
        raise click.UsageError("--approve-all and --reject-writes exclude each other")
    turn = _Turn(app, _decider(approve_all, reject_writes, app), show_thinking)
    if attach:
        if message:
            raise click.UsageError("--attach follows a running turn: give no MESSAGE with it")
        turn.conversation_id = attach
        turn.run("GET", f"{AI}/conversations/{attach}/stream")
        turn.summary()
        return
    if not message:
        raise click.UsageError("give a MESSAGE (or - to read it from stdin)")
    body: dict[str, Any] = {"content": _read_message(message)}
    if provider_id is not None:
        body["provider_id"] = _provider_id(app, provider_id)
    for key, value in (
        ("conversation_id", conversation),
        ("model", model),
        ("thinking", thinking),
    ):
        if value is not None:
            body[key] = value
    turn.conversation_id = conversation
    turn.run("POST", f"{AI}/chat", body)
    turn.summary()


@ai.command("regenerate")
@click.argument("conversation")
@_approval_options
@json_option
@pass_app
def regenerate(
    app: App, conversation: str, approve_all: bool, reject_writes: bool, show_thinking: bool
) -> None:
    """Drop CONVERSATION's last reply and stream a new one.

    \b
    Example:
      orva ai regenerate 0193...
    """
    turn = _Turn(app, _decider(approve_all, reject_writes, app), show_thinking)
    turn.conversation_id = conversation
    turn.run("POST", f"{AI}/conversations/{conversation}/regenerate", {})
    turn.summary()


def _decide_command(verdict: str) -> Any:
    @_approval_options
    @json_option
    @pass_app
    def command(app: App, call_id: str, approve_all: bool, reject_writes: bool, show_thinking: bool) -> None:
        turn = _Turn(app, _decider(approve_all, reject_writes, app), show_thinking)
        turn.run("POST", f"{AI}/tool-calls/{call_id}/{verdict}", {})
        turn.summary()

    return command


ai.command(
    "approve",
    help="Approve tool call CALL_ID (it waits for approval) and stream the resumed turn.\n\n"
    "\b\nExample:\n  orva ai approve 0193...",
)(click.argument("call_id")(_decide_command("approve")))
ai.command(
    "reject",
    help="Reject tool call CALL_ID (the model is told) and stream the resumed turn.\n\n"
    "\b\nExample:\n  orva ai reject 0193...",
)(click.argument("call_id")(_decide_command("reject")))


@ai.command("cancel")
@click.argument("conversation")
@json_option
@pass_app
def cancel(app: App, conversation: str) -> None:
    """Stop the turn running in CONVERSATION (or drop the calls it waits on).

    \b
    Example:
      orva ai cancel 0193...
    """
    answer = app.post(f"{AI}/conversations/{conversation}/cancel", {})
    app.out.show(
        answer,
        lambda a: app.out.text("stopped" if a.get("cancelled") else "nothing was running"),
    )


@ai.group("conversations")
def conversations() -> None:
    """The assistant's conversations: list, show, rename, archive, delete.

    \b
    Example:
      orva ai conversations list
    """


@conversations.command("list")
@click.option("--archived", is_flag=True, help="The archived ones instead.")
@json_option
@pass_app
def list_conversations(app: App, archived: bool) -> None:
    """List conversations, most recently updated first.

    \b
    Example:
      orva ai conversations list
    """
    rows = list(app.client.pages(f"{AI}/conversations", "conversations", {"archived": str(archived).lower()}))
    app.out.show(
        rows,
        lambda rs: app.out.table(
            [{**r, "title": _plain(r["title"]) or "(untitled)", "tokens": _usage(r)} for r in rs],
            CONVERSATION_COLUMNS,
        ),
    )


@conversations.command("show")
@click.argument("conversation")
@json_option
@pass_app
def show_conversation(app: App, conversation: str) -> None:
    """Show CONVERSATION: every message with its tool calls and token counts.

    \b
    Example:
      orva ai conversations show 0193...
    """
    answer = app.get(f"{AI}/conversations/{conversation}")

    def say(text: str, style: str | None = None) -> None:
        app.out.text(_plain(text), style)  # what the model, a tool or a title holds: no control characters

    def render(c: dict[str, Any]) -> None:
        say(
            f"{c['title'] or '(untitled)'} ({c['id']}): {c.get('model') or 'default model'}, "
            f"{_usage(c)} tokens{', archived' if c.get('archived') else ''}"
            f"{', a turn is running' if c.get('running') else ''}",
            "bold",
        )
        for m in c.get("messages", []):
            if m["role"] == "tool":
                continue
            who = "you" if m["role"] == "user" else "assistant"
            tail = f" [{m['status']}]" if m.get("status") not in (None, "complete") else ""
            tokens = f" ({_usage(m)} tokens)" if m["role"] == "assistant" else ""
            say(f"\n{who}{tail}{tokens}:", "bold")
            if m.get("content"):
                say(m["content"])
            for t in m.get("tool_calls", []):
                say(f"  → {t['name']} {_args_text(t.get('arguments'))} [{t['status']}] id {t['id']}", "cyan")
                if t.get("result"):
                    say(f"    {_short(t['result'])}", "dim")
            if m.get("error"):
                err = m["error"]
                say(f"  error: {err.get('code')}: {err.get('message')}", "red")

    app.out.show(answer, render)


@conversations.command("rename")
@click.argument("conversation")
@click.argument("title")
@json_option
@pass_app
def rename_conversation(app: App, conversation: str, title: str) -> None:
    """Give CONVERSATION a new TITLE.

    \b
    Example:
      orva ai conversations rename 0193... "thumbnail service"
    """
    answer = app.client.call("PATCH", f"{AI}/conversations/{conversation}", json={"title": title})
    app.out.show(answer, lambda c: app.out.text(f"renamed {c['id']}: {c['title']}"))


@conversations.command("archive")
@click.argument("conversation")
@click.option("--undo", is_flag=True, help="Unarchive it.")
@json_option
@pass_app
def archive_conversation(app: App, conversation: str, undo: bool) -> None:
    """Archive CONVERSATION (hidden from the default list; kept whole).

    \b
    Example:
      orva ai conversations archive 0193...
    """
    answer = app.client.call("PATCH", f"{AI}/conversations/{conversation}", json={"archived": not undo})
    app.out.show(answer, lambda c: app.out.text(f"{'archived' if c['archived'] else 'unarchived'} {c['id']}"))


@conversations.command("delete")
@click.argument("conversation")
@json_option
@pass_app
def delete_conversation(app: App, conversation: str) -> None:
    """Delete CONVERSATION with all its messages and tool calls (a running turn is stopped first).

    \b
    Example:
      orva ai conversations delete 0193...
    """
    answer = app.delete(f"{AI}/conversations/{conversation}")
    app.out.show(answer, lambda _: app.out.text(f"deleted conversation {conversation}"))


SETTINGS_FIELDS = ("provider_id", "model", "thinking", "approval_policy", "max_tool_steps", "updated_at")


@ai.command("settings")
@click.option("--provider", "provider", default=None, help="The default provider (its label or id).")
@click.option(
    "--model", default=None, help="The default model (`orva ai providers models LABEL` lists them)."
)
@click.option("--thinking", type=click.Choice(["off", "low", "medium", "high"]), default=None)
@click.option(
    "--policy",
    "approval_policy",
    type=click.Choice(["all_writes", "destructive_only", "auto"]),
    default=None,
    help="Which tool calls wait for approval.",
)
@click.option("--max-tool-steps", type=click.IntRange(1, 1000), default=None, help="Tool steps per reply.")
@json_option
@pass_app
def settings(
    app: App,
    provider: str | None,
    model: str | None,
    thinking: str | None,
    approval_policy: str | None,
    max_tool_steps: int | None,
) -> None:
    """Show the assistant's settings, or change the ones given.

    \b
    Examples:
      orva ai settings
      orva ai settings --provider claude --model claude-sonnet-4-5 --policy destructive_only
    """
    body: dict[str, Any] = {
        k: v
        for k, v in (
            ("model", model),
            ("thinking", thinking),
            ("approval_policy", approval_policy),
            ("max_tool_steps", max_tool_steps),
        )
        if v is not None
    }
    if provider is not None:
        body["provider_id"] = _provider_id(app, provider)
    answer = app.put(f"{AI}/settings", body) if body else app.get(f"{AI}/settings")
    app.out.show(answer, lambda s: app.out.record(s, [f for f in SETTINGS_FIELDS if f in s]))


def _provider_id(app: App, name: str) -> str:
    """A provider's id from its label or id."""
    answer = app.get(f"{AI}/providers")
    rows = answer.get("providers", answer) if isinstance(answer, dict) else answer
    for p in rows:
        if name in (p.get("id"), p.get("label")):
            return str(p["id"])
    raise CliError(
        "NOT_FOUND",
        f"no AI provider {name}",
        "`orva ai providers list` shows them; `orva ai providers add` adds one",
    )


commands = [ai]
