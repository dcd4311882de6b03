"""Wheel build hook: a wheel carries the built dashboard (web/dist) as orvad/_data/web.

An editable install needs nothing: a checkout serves web/dist itself (orvad/resources.py), and
`make web` builds it. A regular wheel builds the dashboard first when it is missing (npm ci and
esbuild), so `pip wheel .` from a clean checkout still ships it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class DashboardHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        web = Path(self.root) / "web"
        if not (web / "dist" / "index.html").is_file():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=web, check=True)
            subprocess.run(["node", "build.mjs"], cwd=web, check=True)
        build_data["force_include"][str(web / "dist")] = "orvad/_data/web"
