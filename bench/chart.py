"""The bench's chart: throughput and p99 of every warm configuration beside its same-run baselines.

One PNG per results file (``bench/results/<name>.png`` beside ``<name>.json``): for each server measured,
the bare hello, the HTTP floor of an Orva-shaped response, the relay floor and orvad (Python and Node
workers), as two panels of horizontal bars sharing their labels: requests per second (wrk -c50), and p99
latency. ``python bench/chart.py <results.json>`` redraws one from a stored run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# what each configuration of a warm section is, in the order drawn, and its colour
KINDS = (
    ("baseline_starlette_hello", "bare hello", "#9e9e9e"),
    ("http_floor_orva_shaped", "HTTP floor, Orva-shaped", "#bdbdbd"),
    ("relay_floor_python", "relay floor, Python", "#5c8fd6"),
    ("orva_python", "orvad, Python", "#e07b39"),
    ("relay_floor_node", "relay floor, Node", "#8fb3e6"),
    ("orva_node", "orvad, Node", "#f0a872"),
)


@dataclass(frozen=True)
class Bar:
    label: str
    req_s: float
    p99_ms: float
    colour: str


def server_name(section: str) -> str:
    """``warm`` is Hypercorn (the default server), ``warm_<server>`` the others."""
    return "Hypercorn" if section == "warm" else section.split("_", 1)[1].title()


def bars(results: dict[str, Any]) -> list[Bar]:
    """Every warm configuration of a run that has figures, server by server."""
    out = []
    for section in sorted(k for k in results if k == "warm" or k.startswith("warm_")):
        figures = results[section]
        if not isinstance(figures, dict):
            continue
        for key, what, colour in KINDS:
            r = figures.get(key)
            if isinstance(r, dict) and "req_s" in r and "p99_ms" in r:
                out.append(
                    Bar(f"{server_name(section)}: {what}", float(r["req_s"]), float(r["p99_ms"]), colour)
                )
    return out


def draw(results: dict[str, Any], path: Path) -> Path | None:
    """Write the chart of ``results`` to ``path`` (PNG); None when the run has no warm figures."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file
    import matplotlib.pyplot as plt

    drawn = bars(results)
    if not drawn:
        return None
    drawn.reverse()  # barh draws bottom-up: the first configuration on top
    labels = [b.label for b in drawn]
    colours = [b.colour for b in drawn]
    fig, (left, right) = plt.subplots(
        1, 2, sharey=True, figsize=(12, 0.38 * len(drawn) + 1.6), gridspec_kw={"wspace": 0.05}
    )
    left.barh(labels, [b.req_s for b in drawn], color=colours)
    left.set_xlabel("requests per second (wrk -t2 -c50; more is better)")
    right.barh(labels, [b.p99_ms for b in drawn], color=colours)
    right.set_xlabel("p99 latency, ms (less is better)")
    for axis, values, unit in (
        (left, [b.req_s for b in drawn], ""),
        (right, [b.p99_ms for b in drawn], " ms"),
    ):
        axis.grid(axis="x", alpha=0.3)
        for y, value in enumerate(values):
            axis.text(
                value,
                y,
                f" {value:,.0f}{unit}" if not unit else f" {value:.1f}{unit}",
                va="center",
                fontsize=8,
            )
        axis.margins(x=0.18)
    when = str(results.get("date", ""))[:16].replace("T", " ")
    fig.suptitle(f"Warm invokes beside their same-run baselines ({when} UTC)", fontsize=11)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/chart.py bench/results/<run>.json  (writes <run>.png beside it)")
    source = Path(sys.argv[1])
    written = draw(json.loads(source.read_text()), source.with_suffix(".png"))
    print(written or f"{source} has no warm figures to draw")


if __name__ == "__main__":
    main()
