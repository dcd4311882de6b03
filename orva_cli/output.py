"""What the user sees: tables on a terminal, plain columns in a pipe, JSON with --json, a spinner on stderr.

rich is imported on first use only: --json output, the common case in scripts, never needs it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

# (header, key) pairs; a key names a field of the record
Columns = Sequence[tuple[str, str]]
# pieces of one line: (text, rich style or "")
Parts = Sequence[tuple[str, str]]


def cell(value: Any) -> str:
    """A field as table text: timestamps to the second, lists and maps flattened, nothing as '-'."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items())
    text = str(value)
    if len(text) >= 20 and text[4:5] == "-" and text[10:11] == "T":  # RFC 3339
        return text[:19].replace("T", " ")
    return text


class Output:
    def __init__(self) -> None:
        self.json = False  # set by --json wherever it is given

    @cached_property
    def out(self) -> Console:
        from rich.console import Console

        # markup off: values from the server (names, logs) must never be read as rich markup
        console = Console(markup=False, highlight=False)
        if console.is_terminal:
            return console
        return Console(markup=False, highlight=False, width=100_000, no_color=True)  # a pipe: whole lines

    @cached_property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, markup=False, highlight=False)

    @property
    def interactive(self) -> bool:
        return sys.stderr.isatty() and self.err.is_terminal

    def dump(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def line(self, data: Any) -> None:
        """One JSON document per line (for streams such as `logs --follow --json`)."""
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def table(self, rows: Iterable[dict[str, Any]], columns: Columns, *, title: str | None = None) -> None:
        from rich import box
        from rich.table import Table

        framed = self.out.is_terminal
        table = Table(*(h for h, _ in columns), box=box.SIMPLE_HEAD if framed else None,
                      header_style="bold" if framed else "", pad_edge=False, show_edge=False)
        for column, (_, key) in zip(table.columns, columns, strict=True):
            if key == "id":  # a narrow terminal folds ids rather than cut them: people copy them
                column.overflow = "fold"
        for row in rows:
            table.add_row(*(cell(row.get(key)) for _, key in columns))
        if title:
            self.text(f"{title}:", "bold")
        self._print(table)

    def record(self, data: dict[str, Any], fields: Iterable[str] | None = None) -> None:
        """One record as `field  value` lines."""
        from rich.table import Table

        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold" if self.out.is_terminal else "")
        table.add_column()
        for field in fields or data:
            table.add_row(field, cell(data.get(field)))
        self._print(table)

    def _print(self, renderable: RenderableType) -> None:
        if self.out.is_terminal:
            self.out.print(renderable)
            return
        with self.out.capture() as captured:  # in a pipe, no padding after the last column
            self.out.print(renderable)
        sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))

    def show(self, data: Any, render: Any = None) -> None:
        """JSON under --json, else the human rendering (a callable taking the data)."""
        if self.json or render is None:
            self.dump(data)
        else:
            render(data)

    def text(self, text: str, style: str | None = None) -> None:
        self.parts([(text, style or "")])

    def parts(self, parts: Parts, *, err: bool = False) -> None:
        """One line made of styled pieces, never wrapped (logs and diffs are copied and grepped)."""
        from rich.text import Text

        (self.err if err else self.out).print(Text.assemble(*parts), soft_wrap=True)

    def note(self, text: str, style: str | None = "dim") -> None:
        """Progress and side remarks go to stderr, so stdout stays the result."""
        self.parts([(text, style or "")], err=True)

    @contextlib.contextmanager
    def spinner(self, message: str) -> Iterator[Callable[[str], None]]:
        """A spinner on stderr while long work runs (nothing when stderr is not a terminal); yields a
        function that changes its message."""
        if not self.interactive:
            yield lambda _message: None
            return
        from rich.text import Text

        with self.err.status(Text(message)) as status:  # Text: a path or name is never read as markup
            yield lambda new: status.update(Text(new))
