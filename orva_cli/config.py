"""Where the CLI finds its endpoint and API key: flags > environment > ~/.orva/config.yaml > default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ENDPOINT = "http://127.0.0.1:8443"  # orvad's default listen address
ENV_ENDPOINT, ENV_API_KEY = "ORVA_ENDPOINT", "ORVA_API_KEY"


class ConfigError(Exception):
    """The config file exists but cannot be used."""


@dataclass(frozen=True)
class Settings:
    endpoint: str
    api_key: str | None
    endpoint_from: (
        str  # "flag" | "env" | "file" | "default": said in errors so a wrong source is easy to spot
    )
    api_key_from: str | None

    def origin(self, field: str) -> str:
        """Where a value came from, in words a user can act on."""
        source = self.endpoint_from if field == "endpoint" else self.api_key_from
        flag, env = ("--endpoint", ENV_ENDPOINT) if field == "endpoint" else ("--api-key", ENV_API_KEY)
        return {
            "flag": flag,
            "env": env,
            "file": str(config_path()),
            "default": f"the default {DEFAULT_ENDPOINT}",
        }.get(source or "", "nowhere")


def config_path() -> Path:
    # Path.home() honours $HOME, which is how tests (and users with several accounts) isolate it
    return Path.home() / ".orva" / "config.yaml"


def read_file(path: Path | None = None) -> dict[str, str]:
    import yaml  # only when the file is consulted: flags and environment keep start-up quick

    path = path or config_path()
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping with endpoint and api_key")
    return {k: str(v) for k, v in data.items() if k in ("endpoint", "api_key") and v}


def resolve(endpoint: str | None, api_key: str | None) -> Settings:
    """Each value from the first source that has it; the file is read only when a value is still missing."""
    stored: dict[str, str] | None = None

    def pick(flag: str | None, env: str, key: str) -> tuple[str | None, str | None]:
        nonlocal stored
        if flag:
            return flag, "flag"
        if os.environ.get(env):
            return os.environ[env], "env"
        stored = read_file() if stored is None else stored
        return (stored[key], "file") if key in stored else (None, None)

    url, url_from = pick(endpoint, ENV_ENDPOINT, "endpoint")
    key, key_from = pick(api_key, ENV_API_KEY, "api_key")
    return Settings(
        endpoint=(url or DEFAULT_ENDPOINT).rstrip("/"),
        api_key=key,
        endpoint_from=url_from or "default",
        api_key_from=key_from,
    )


def save(endpoint: str, api_key: str) -> Path:
    """Write the config file 0600 in a 0700 folder, never leaving the key readable by others mid-write."""
    import yaml

    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)  # mkdir's mode is masked by umask and ignored for an existing folder
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file left over from an earlier run
        yaml.safe_dump({"endpoint": endpoint, "api_key": api_key}, out, default_flow_style=False)
    os.replace(tmp, path)
    return path
