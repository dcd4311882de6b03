"""A short, human summary of a User-Agent ("Firefox on Linux", "curl", "orva CLI") for the sessions list.

Pure and forgiving: an unknown or missing agent is "unknown device"; the raw header is shown beside it.
"""

from __future__ import annotations

import re

# (pattern, name), first match wins: Edge and Opera also say Chrome, Chrome also says Safari.
_BROWSERS = (
    (re.compile(r"\bEdg(?:e|A|iOS)?/"), "Edge"),
    (re.compile(r"\bOPR/|\bOpera\b"), "Opera"),
    (re.compile(r"\bFirefox/|\bFxiOS/"), "Firefox"),
    (re.compile(r"\bHeadlessChrome/"), "Headless Chrome"),
    (re.compile(r"\bChrom(?:e|ium)/|\bCriOS/"), "Chrome"),
    (re.compile(r"\bVersion/[\d.]+.*\bSafari/"), "Safari"),
)
_SYSTEMS = (
    (re.compile(r"\bAndroid\b"), "Android"),
    (re.compile(r"\biPhone|\biPad|\biPod"), "iOS"),
    (re.compile(r"\bWindows\b"), "Windows"),
    (re.compile(r"\bMac OS X\b|\bMacintosh\b"), "macOS"),
    (re.compile(r"\bCrOS\b"), "ChromeOS"),
    (re.compile(r"\bLinux\b|\bX11\b"), "Linux"),
)
_TOOLS = (
    (re.compile(r"^orva-cli/|^orva/"), "orva CLI"),
    (re.compile(r"^curl/"), "curl"),
    (re.compile(r"^python-httpx/"), "python-httpx"),
    (re.compile(r"^python-requests/"), "python-requests"),
    (re.compile(r"^Wget/"), "Wget"),
)


def device_of(user_agent: str | None) -> str:
    """``"<browser> on <system>"``, a tool's name, or ``"unknown device"``."""
    if not user_agent:
        return "unknown device"
    for pattern, name in _TOOLS:
        if pattern.search(user_agent):
            return name
    browser = next((name for pattern, name in _BROWSERS if pattern.search(user_agent)), None)
    system = next((name for pattern, name in _SYSTEMS if pattern.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "unknown device"
