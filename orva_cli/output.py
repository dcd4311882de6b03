"""What the user sees: tables on a terminal, plain columns in a pipe, JSON with --json, a spinner on stderr.

rich is imported on first use only: --json output, the common case in scripts, never needs it.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from orva_cli.ids import short_ids

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

TABLE_WIDTH = 80  # every table fits a classic terminal, on a terminal and in a pipe alike
MIN_FLEX = 8  # a cut column keeps at least this many characters (or its header's)


class Col(NamedTuple):
    header: str
    key: str  # a field of the record
    flex: bool = False  # may be cut (ending in …) so that the table fits TABLE_WIDTH
    short: bool = False  # an id or hash: shown by its shortest prefix unique in the table (>= 8 characters)
    empty: str = "-"  # shown for no value
    wrap: bool = False  # a flex column whose long cells wrap inside it instead of being cut (health details)


Columns = Sequence[Col]
# pieces of one line: (text, rich style or "")
Parts = Sequence[tuple[str, str]]


def _is_timestamp(text: str) -> bool:
    return len(text) >= 20 and text[4:5] == "-" and text[10:11] == "T"  # RFC 3339


def age(text: str, now: datetime | None = None) -> str:
    """An RFC 3339 time as a short distance from now: 42s, 5m, 3h, 12d, 2y; `in 89d` for the future."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return text[:16].replace("T", " ")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    span = abs(seconds)
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if span >= size:
            amount = f"{int(span // size)}{unit}"
            break
    else:
        amount = f"{int(span)}s"
    return amount if seconds >= -1 else f"in {amount}"


def cell(value: Any, *, in_table: bool = False) -> str:
    """A field as text: timestamps to the second (in tables: their age), lists and maps flattened,
    nothing as '-'."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items())
    text = " ".join(str(value).split())  # one line per row: a description's newlines are spaces
    if _is_timestamp(text):
        return age(text) if in_table else text[:19].replace("T", " ")
    if _UNPRINTABLE.search(text):  # a name or log line carrying a terminal escape is shown, never obeyed
        text = _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)
    return text


# control characters (C0, DEL, C1) and bidirectional overrides: written as their escapes (\x1b, \u202e)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def fit(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    flex: Sequence[bool],
    gap: int,
    limit: int = TABLE_WIDTH,
) -> list[int]:
    """Column widths: each column's widest cell, the widest flex columns narrowed until the table fits."""
    from rich.cells import cell_len

    widths = [max([cell_len(h), *(cell_len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    excess = sum(widths) + gap * (len(widths) - 1) - limit
    while excess > 0:
        cuttable = [i for i, w in enumerate(widths) if flex[i] and w > max(MIN_FLEX, cell_len(headers[i]))]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


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
        """Rows under their headers, at most TABLE_WIDTH characters wide: ids by a short prefix, flex
        columns cut with an ellipsis. --json has every value whole."""
        from rich import box
        from rich.table import Table

        records = list(rows)
        texts = [
            [
                cell(r.get(c.key), in_table=True) if r.get(c.key) not in (None, "") else c.empty
                for c in columns
            ]
            for r in records
        ]
        for i, column in enumerate(columns):
            if column.short:
                prefixes = short_ids(t[i] for t in texts if t[i] != "-")
                for t in texts:
                    t[i] = prefixes.get(t[i], t[i])
        framed = self.out.is_terminal
        headers = [c.header for c in columns]
        widths = fit(headers, texts, [c.flex for c in columns], gap=3 if framed else 2)
        table = Table(
            *headers,
            box=box.SIMPLE_HEAD if framed else None,
            header_style="bold" if framed else "",
            pad_edge=False,
            show_edge=False,
        )
        for rendered, column, width in zip(table.columns, columns, widths, strict=True):
            rendered.width, rendered.no_wrap, rendered.overflow = (
                width,
                not column.wrap,
                "fold" if column.wrap else "ellipsis",
            )
        for text in texts:
            table.add_row(*text)
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
