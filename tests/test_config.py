"""Settings: defaults, precedence (flags > env > file), validation with a one-line error."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from orvad.config import ConfigError, load_settings
from tests.helpers import Orvad, free_port


def test_defaults() -> None:
    s = load_settings({}, environ={})
    assert (s.host, s.port, s.session_days, s.secure_cookies) == ("127.0.0.1", 8443, 7, False)
    assert s.max_body_bytes == 6 * 1024 * 1024 and s.log_level == "info" and s.data_dir == Path("data")


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "orva.yaml"
    config.write_text("port: 9001\nsession_days: 3\nlog_level: debug\nsecure_cookies: true\n")
    s = load_settings({}, environ={}, config_file=config)
    assert (s.port, s.session_days, s.log_level, s.secure_cookies) == (9001, 3, "debug", True)
    s = load_settings({}, environ={"ORVA_PORT": "9002", "ORVA_SESSION_DAYS": "4"}, config_file=config)
    assert (s.port, s.session_days, s.log_level) == (9002, 4, "debug")
    s = load_settings({"port": "9003"}, environ={"ORVA_PORT": "9002"}, config_file=config)
    assert s.port == 9003


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ORVA_PORT": "70000"}, "ORVA_PORT"),
        ({"ORVA_PORT": "http"}, "ORVA_PORT"),
        ({"ORVA_SECURE_COOKIES": "maybe"}, "ORVA_SECURE_COOKIES"),
        ({"ORVA_LOG_LEVEL": "loud"}, "ORVA_LOG_LEVEL"),
        ({"ORVA_MAX_BODY_BYTES": "-1"}, "ORVA_MAX_BODY_BYTES"),
        ({"ORVA_SESSION_DAYS": "0"}, "ORVA_SESSION_DAYS"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, environ=env)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("prot: 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings({}, environ={}, config_file=bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings({}, environ={}, config_file=bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, environ={}, config_file=tmp_path / "missing.yaml")


def test_orvad_refuses_to_start_with_a_bad_value(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "orvad", "serve", "--port", "99999", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "port" in proc.stderr and "99999" in proc.stderr and "1..65535" in proc.stderr
    assert not (tmp_path / "d").exists()  # nothing was created on the way to failing


def test_real_server_honours_file_env_and_flag(tmp_path: Path, make_orvad: Callable[..., Orvad]) -> None:
    config = tmp_path / "orva.yaml"
    config.write_text(f"port: {free_port()}\nmax_body_bytes: 2048\nsession_days: 2\n")
    server = make_orvad(env={"ORVA_SESSION_DAYS": "3"}, args=["--config", str(config)])
    # the fixture's ORVA_PORT (env) beats the file's port; the file's body cap applies
    with server.client() as c:
        r = c.post("/api/v1/auth/login", content=b"x" * 4096)
        assert r.status_code == 413 and r.json()["error"]["details"]["limit_bytes"] == 2048
        r = server.onboard(c)
        max_age = int(r.headers["set-cookie"].lower().split("max-age=")[1].split(";")[0])
        assert 3 * 86400 - 60 <= max_age <= 3 * 86400  # env beats file
