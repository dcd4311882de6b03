"""`orvad migrate`: copy a single node's SQLite database into an empty PostgreSQL database, and verify it.

One job, in this order (docs/CLUSTER.md, "Moving a single node to PostgreSQL"):

1. The source: SQLite's file opened read-only (``file:...?mode=ro``) inside ONE read transaction, so
   everything read is one consistent snapshot even if an orvad still writes the file (it should be stopped:
   what it writes after the snapshot is not copied). It must be at the latest schema version this orvad
   ships (``orvad serve`` migrates it on start) and keep its foreign keys (``PRAGMA foreign_key_check``).
2. The target: refused if it holds tables that are not orvad's, or orders text other than bytewise (the
   check orvad's start makes, ``driver.check_collation``); migrated to the same version with the
   PostgreSQL runner (``migrate.migrate``), then, in
   ONE transaction: its tables locked, refused unless every orvad table is empty (the single-row settings
   tables the migrations seed are replaced), user triggers off while rows arrive (the KV usage counters
   are copied as they are, not counted twice), every table copied with binary ``COPY`` in foreign-key
   order (parents first), identity sequences set past the copied maximum, and every table verified. Only
   when every table matches does it commit: a refusal, a failure or a mismatch leaves the target empty.
3. Values are converted to the PostgreSQL column's type deliberately (``convert``): what cannot be
   converted without loss is refused, naming the table, the column and the row. A NUL character in text
   becomes U+FFFD, as a running orvad on PostgreSQL stores it (``driver.storable``), and is counted.

The verification (``RowDigest``): per table, the row count and a checksum computed the same way on both
sides in Python, over the values as each driver returns them (SQLite's raw values, before conversion;
PostgreSQL's after the round trip; a source text bound for a TEXT column with its NUL characters as U+FFFD,
the one conversion that changes a value), so it checks the conversion as well as the transfer and depends
on no SQL dialect or collation. Each value is normalised: NULL; a number by its exact value (an integer, or a
float equal to an integer, as that integer; another float by ``repr``: the shortest text that reads back
as the same double); text as its UTF-8 bytes and a BLOB as its bytes (the same tag: text copied into a
BYTEA column is its UTF-8). Each value is tagged and length-prefixed, a row is the SHA-256 of its values in
column order, and a table's checksum is the SHA-256 of its name, its row count and the sum of its rows'
hashes modulo 2**256: independent of row order, so neither side sorts, and a row lost, added, duplicated
or changed changes it.

Secrets, webhook secrets and AI provider keys are sealed with the node's master key; they are copied as
the bytes they are, so every node needs the same master key (docs/CLUSTER.md).
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from orvad.store.db import migration_files
from orvad.store.postgres.driver import NUL_STANDIN, check_collation
from orvad.store.postgres.migrate import migrate
from orvad.store.sql import DatabaseUnusable

CONNECT_TIMEOUT_S = 10.0
LOCK_TIMEOUT = "10s"
FETCH_ROWS = 2000
PROGRESS_ROWS = 10_000  # a table this long gets a line of its own when it is copied
# single-row tables the migrations seed (CHECK (id = 1)): present on an empty target, replaced by the source's
SEEDED = frozenset({"ai_settings", "replay_state"})
# recorded by each runner as it migrates; compared by version and name, not copied
SCHEMA_TABLE = "schema_migrations"
INT64 = (-(2**63), 2**63 - 1)
INT16 = (-(2**15), 2**15 - 1)
EXACT_FLOAT_INT = 2**53  # integers up to this magnitude are exact as a double
_MOD = 2**256


class MigrateError(Exception):
    """A refusal or a failure, for the operator: what is wrong, and what to do (``hint``)."""

    def __init__(self, message: str, hint: str = "", report: CopyReport | None = None, code: int = 2) -> None:
        super().__init__(message)
        self.hint = hint
        self.report = report
        self.code = code  # the exit status: 2 refused (bad input), 1 failed during the copy or its check


@dataclass
class TableResult:
    name: str
    source_rows: int
    source_sum: str
    target_rows: int = -1
    target_sum: str = ""
    nul_values: int = 0  # text values whose NUL characters became U+FFFD

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_sum == self.target_sum


@dataclass
class CopyReport:
    source: Path
    target: str  # the URL without its password
    version: int
    tables: list[TableResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.source_rows for t in self.tables)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def nul_values(self) -> int:
        return sum(t.nul_values for t in self.tables)

    def lines(self) -> list[str]:
        """The per-table verification as printed by ``orvad migrate``."""
        width = max([len("table"), *(len(t.name) for t in self.tables)])
        out = [f"{'table':<{width}}  {'rows':>9}  {'sqlite':<16}  {'postgresql':<16}  ok"]
        for t in self.tables:
            target_rows = str(t.target_rows) if t.target_rows >= 0 else "-"
            rows = str(t.source_rows) if t.source_rows == t.target_rows else f"{t.source_rows}/{target_rows}"
            out.append(
                f"{t.name:<{width}}  {rows:>9}  {t.source_sum[:16]:<16}  {t.target_sum[:16] or '-':<16}  "
                f"{'ok' if t.ok else 'MISMATCH'}"
            )
        return out


# ---------------------------------------------------------------- URLs


def source_path(url: str) -> Path:
    """``sqlite:///abs/path/orva.db`` (or ``sqlite:relative/orva.db``) -> the file's path."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() != "sqlite":
        raise MigrateError(
            f"--from must be a sqlite: URL, not {_scheme_of(url)}",
            "write --from sqlite:///var/lib/orva/data/orva.db (three slashes, then the file's absolute path)",
        )
    if rest.startswith("//"):
        host, _, path = rest[2:].partition("/")
        if host:
            raise MigrateError(
                f"--from {url}: a sqlite: URL names no host ({host!r})",
                "write --from sqlite:///path/to/orva.db (three slashes before an absolute path)",
            )
        rest = "/" + path
    rest = unquote(rest.split("?", 1)[0])
    if not rest:
        raise MigrateError("--from names no file", "write --from sqlite:///path/to/orva.db")
    return Path(rest)


def target_dsn(url: str) -> str:
    """The PostgreSQL URL as asyncpg takes it; refused unless its scheme is postgresql: or postgres:."""
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme not in ("postgresql", "postgres"):
        raise MigrateError(
            f"--to must be a postgresql:// URL, not {_scheme_of(redact(url))}",
            "write --to postgresql://USER@HOST:5432/DATABASE (the password in PGPASSWORD or ~/.pgpass"
            " keeps it out of the shell's history)",
        )
    return url


def redact(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that does not parse)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostport}"
    query = "&".join(
        f"{k}=***" if k.lower() == "password" else f"{k}{sep}{v}"
        for k, sep, v in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _scheme_of(url: str) -> str:
    if ":" not in url:
        return f"{url!r} (no scheme)"
    return f"{url.partition(':')[0]!r}"


def _secrets_of(url: str) -> list[str]:
    """The password(s) a URL carries, to scrub from any message that might echo them."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        for item in parts.query.split("&"):
            key, _, value = item.partition("=")
            if key.lower() == "password" and value:
                found += [value, unquote(value)]
    except ValueError:
        pass
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's password (if it appears at all) replaced by ``***``."""
    for secret in _secrets_of(url):
        text = text.replace(secret, "***")
    return text


# ---------------------------------------------------------------- values


class BadText(bytes):
    """A TEXT value that is not valid UTF-8 (sqlite3's text factory keeps its bytes to refuse it by name)."""


def _text_factory(raw: bytes) -> str | BadText:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return BadText(raw)


class Unconvertible(ValueError):
    pass


def _integer(value: Any, low: int, high: int, pg_type: str) -> int:
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise Unconvertible(f"the real {value!r} is not an integer")
        value = int(value)
    if not isinstance(value, int):
        raise Unconvertible(f"{_kind(value)} {_show(value)} is not an integer")
    if not low <= value <= high:
        raise Unconvertible(f"{value} is outside {pg_type}'s range {low}..{high}")
    return value


def _bigint(value: Any) -> int:
    return _integer(value, *INT64, "bigint")


def _smallint(value: Any) -> int:
    return _integer(value, *INT16, "smallint")


def _double(value: Any) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        if abs(value) > EXACT_FLOAT_INT:
            raise Unconvertible(f"the integer {value} has no exact double precision value")
        return float(value)
    raise Unconvertible(f"{_kind(value)} {_show(value)} is not a number")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise Unconvertible("a BLOB that is not UTF-8 text") from None
    if not isinstance(value, str):
        raise Unconvertible(f"{_kind(value)} {_show(value)} is not text")
    return value.replace("\x00", NUL_STANDIN)  # PostgreSQL's text cannot hold it (a running orvad's way)


def _bytea(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if not isinstance(value, bytes):
        raise Unconvertible(f"{_kind(value)} {_show(value)} is not a BLOB")
    return bytes(value)


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "bigint": _bigint,
    "smallint": _smallint,
    "double precision": _double,
    "text": _text,
    "bytea": _bytea,
}
COPYABLE_TYPES = frozenset(CONVERTERS)


def convert(pg_type: str, value: Any) -> Any:
    """A SQLite value as the Python value asyncpg writes into a column of ``pg_type`` (exact types: int for
    BIGINT/SMALLINT, float for DOUBLE PRECISION, str for TEXT, bytes for BYTEA); ``Unconvertible`` when it
    cannot be written without loss. Deliberate conversions: an integral real into an integer column, an
    integer up to 2**53 into a double, a UTF-8 BLOB into text (a NUL in it as U+FFFD), text into BYTEA as its
    UTF-8 bytes."""
    if value is None:
        return None
    if isinstance(value, BadText):
        raise Unconvertible("text that is not valid UTF-8")
    converter = CONVERTERS.get(pg_type)
    if converter is None:
        raise Unconvertible(f"orvad migrate does not know the PostgreSQL type {pg_type}")
    return converter(value)


def _kind(value: Any) -> str:
    return {int: "the integer", float: "the real", str: "the text"}.get(type(value), "a BLOB")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: int | float) -> bytes:
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value)).encode()
        return repr(value).encode()
    return str(value).encode()


def canonical(value: Any) -> bytes:
    """One value, normalised for the checksum (the module's docstring says how)."""
    if value is None:
        return b"0"
    if isinstance(value, bool):  # not a SQLite or PostgreSQL value here; never hashed as an integer
        raise TypeError("a bool in a row")
    if isinstance(value, (int, float)):
        payload, tag = _number(value), b"n"
    elif isinstance(value, str):
        payload, tag = value.encode("utf-8"), b"s"
    elif isinstance(value, (bytes, bytearray, memoryview)):
        payload, tag = bytes(value), b"s"
    else:
        raise TypeError(f"cannot normalise {type(value).__name__}")
    return tag + len(payload).to_bytes(8, "big") + payload


class RowDigest:
    """A table's row count and order-independent checksum (see the module's docstring)."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.rows = 0
        self._sum = 0

    def add(self, row: Sequence[Any]) -> None:
        h = hashlib.sha256()
        for value in row:
            h.update(canonical(value))
        self._sum = (self._sum + int.from_bytes(h.digest(), "big")) % _MOD
        self.rows += 1

    def hexdigest(self) -> str:
        h = hashlib.sha256(f"{self.table}\n{self.rows}\n".encode())
        h.update(self._sum.to_bytes(32, "big"))
        return h.hexdigest()


# ---------------------------------------------------------------- the source


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Source:
    """The SQLite file, read-only, in one read transaction (one snapshot) from ``open`` to ``close``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def open(self) -> None:
        path = self.path
        if not path.exists():
            raise MigrateError(
                f"no database at {path}",
                "--from names the orva.db in the data dir orvad ran with (ORVA_DATA_DIR, default ./data):"
                " --from sqlite:///var/lib/orva/data/orva.db",
            )
        if not path.is_file():
            raise MigrateError(f"{path} is not a file", "--from names the data dir's orva.db file")
        uri = f"file:{quote(str(path.absolute()), safe='/')}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise MigrateError(
                f"cannot open {path}: {exc}",
                "run orvad migrate as the user that runs orvad (it reads the file and its -wal and -shm)",
            ) from None
        conn.text_factory = _text_factory
        self.conn = conn
        try:
            conn.execute("BEGIN")  # deferred: the first read below takes the snapshot every later read sees
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        except sqlite3.DatabaseError as exc:
            self.close()
            raise MigrateError(
                f"{path} is not a SQLite database ({exc})",
                "--from names the orva.db in orvad's data dir, not a backup archive or another file"
                " (a backup made by orvad backup: restore it with orvad restore first)",
            ) from None
        if SCHEMA_TABLE not in names:
            self.close()
            raise MigrateError(
                f"{path} is a SQLite database but not orvad's (it has no {SCHEMA_TABLE} table)",
                "--from names the orva.db in orvad's data dir",
            )

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            conn.close()

    def _db(self) -> sqlite3.Connection:
        if self.conn is None:
            raise RuntimeError("the source is not open")
        return self.conn

    def versions(self) -> list[tuple[int, str]]:
        return [
            (int(v), str(n))
            for v, n in self._db().execute(f"SELECT version, name FROM {SCHEMA_TABLE} ORDER BY version")
        ]

    def tables(self) -> list[str]:
        return [
            str(r[0])
            for r in self._db().execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        ]

    def columns(self, table: str) -> list[str]:
        return [str(r[1]) for r in self._db().execute(f"PRAGMA table_info({_ident(table)})")]

    def key_columns(self, table: str) -> list[str]:
        info = sorted(
            (int(r[5]), str(r[1])) for r in self._db().execute(f"PRAGMA table_info({_ident(table)})")
        )
        return [name for pk, name in info if pk > 0]

    def has_rowid(self, table: str) -> bool:
        try:
            self._db().execute(f"SELECT rowid FROM {_ident(table)} LIMIT 0")
        except sqlite3.OperationalError:
            return False  # WITHOUT ROWID
        return True

    def foreign_key_problem(self) -> tuple[str, int | None, str] | None:
        """The first row whose foreign key names a missing parent: (table, rowid, parent table)."""
        row = self._db().execute("PRAGMA foreign_key_check").fetchone()
        return (str(row[0]), row[1], str(row[2])) if row else None

    def rows(self, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Every row of ``table``: its identity for errors (rowid, or the primary key), then ``columns``."""
        keys = ["rowid"] if self.has_rowid(table) else self.key_columns(table)
        select = ", ".join([*keys, *(_ident(c) for c in columns)])
        cursor = self._db().execute(f"SELECT {select} FROM {_ident(table)}")
        while batch := cursor.fetchmany(FETCH_ROWS):
            for row in batch:
                ident = row[: len(keys)]
                if keys == ["rowid"]:
                    where = f"rowid {ident[0]}"
                else:
                    where = ", ".join(f"{k} {_show(v)}" for k, v in zip(keys, ident, strict=True))
                yield (where, *row[len(keys) :])


# ---------------------------------------------------------------- the target


@dataclass
class TargetTable:
    name: str
    columns: list[str]
    types: list[str]
    identity: list[str]
    parents: set[str]
    triggers: bool


async def _target_tables(conn: asyncpg.Connection[Any]) -> dict[str, TargetTable]:
    tables: dict[str, TargetTable] = {}
    for r in await conn.fetch(
        """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attidentity
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY c.relname, a.attnum"""
    ):
        t = tables.setdefault(r["relname"], TargetTable(r["relname"], [], [], [], set(), False))
        t.columns.append(r["attname"])
        t.types.append(r["type"])
        if r["attidentity"] in (b"a", b"d", "a", "d"):  # asyncpg reads the "char" type as bytes
            t.identity.append(r["attname"])
    for r in await conn.fetch(
        """SELECT child.relname AS child, parent.relname AS parent FROM pg_constraint k
           JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid
           JOIN pg_namespace n ON n.oid = child.relnamespace
           WHERE k.contype = 'f' AND n.nspname = current_schema()"""
    ):
        if r["child"] in tables and r["parent"] != r["child"]:
            tables[r["child"]].parents.add(r["parent"])
    for r in await conn.fetch(
        """SELECT DISTINCT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE NOT g.tgisinternal AND n.nspname = current_schema()"""
    ):
        if r["relname"] in tables:
            tables[r["relname"]].triggers = True
    return tables


def copy_order(tables: dict[str, TargetTable]) -> list[str]:
    """Parents before children (foreign keys), otherwise by name; a cycle is refused."""
    done: list[str] = []
    placed: set[str] = set()
    pending = sorted(tables)
    while pending:
        ready = [t for t in pending if tables[t].parents & set(tables) <= placed]
        if not ready:
            raise MigrateError(f"the foreign keys of {', '.join(pending)} form a cycle", "")
        done += ready
        placed.update(ready)
        pending = [t for t in pending if t not in placed]
    return done


# ---------------------------------------------------------------- the command


def latest_version() -> int:
    return migration_files()[-1][0]


async def copy(
    source_url: str, target_url: str, say: Callable[[str], None] = lambda line: None
) -> CopyReport:
    """Copy and verify; the report on success, ``MigrateError`` (nothing committed) otherwise."""
    path = source_path(source_url)
    dsn = target_dsn(target_url)
    shown = redact(target_url)
    source = Source(path)
    source.open()
    try:
        versions = source.versions()
        latest = latest_version()
        version = versions[-1][0] if versions else 0
        if version < latest:
            raise MigrateError(
                f"{path} is at schema version {version}; this orvad ships version {latest}",
                f"start this orvad once on it (orvad serve --data-dir {path.parent}: it migrates the file"
                " on start), stop it, then run orvad migrate again",
            )
        if version > latest:
            raise MigrateError(
                f"{path} is at schema version {version}, newer than this orvad's {latest}",
                "run orvad migrate from the orvad release that last ran on it",
            )
        problem = source.foreign_key_problem()
        if problem is not None:
            table, rowid, parent = problem
            raise MigrateError(
                f"{path}: {table} rowid {rowid} refers to a {parent} row that does not exist",
                "orvad keeps foreign keys on, so the file was changed outside orvad: delete that row"
                " (sqlite3, on a copy of the file) and run orvad migrate again",
            )
        report = CopyReport(path, shown, version)
        conn = await _connect(dsn, target_url, shown)
        try:
            await _copy_into(conn, source, versions, report, say, shown)
        except asyncpg.PostgresError as exc:
            detail = getattr(exc, "detail", None)
            raise MigrateError(
                f"PostgreSQL refused the copy: {scrub(str(exc), target_url)}"
                + (f" ({scrub(detail, target_url)})" if detail else "")
                + "; nothing was committed",
                "the database at --to is left empty; fix what the message names and run orvad migrate again",
                code=1,
            ) from None
        except (OSError, asyncpg.InterfaceError) as exc:
            raise MigrateError(
                f"the connection to {shown} failed during the copy: {scrub(str(exc), target_url)};"
                " nothing was committed",
                "run orvad migrate again once PostgreSQL is reachable (the database at --to is still empty)",
                code=1,
            ) from None
        finally:
            await conn.close()
        return report
    finally:
        source.close()


async def _connect(dsn: str, url: str, shown: str) -> asyncpg.Connection[Any]:
    try:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except asyncpg.InvalidCatalogNameError as exc:
        raise MigrateError(
            f"cannot connect to {shown}: {scrub(str(exc), url)}",
            "create the database first (createdb, or CREATE DATABASE as its owner), then run orvad migrate again",
        ) from None
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise MigrateError(
            f"cannot connect to {shown}: {scrub(str(exc), url)}",
            "check the user and password of --to (or PGPASSWORD / ~/.pgpass)",
        ) from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        reason = scrub(str(exc) or type(exc).__name__, url)
        raise MigrateError(
            f"cannot connect to {shown}: {reason}",
            "check the host and port of --to and that PostgreSQL is running and accepts connections from here",
        ) from None
    return conn


async def _copy_into(
    conn: asyncpg.Connection[Any],
    source: Source,
    versions: list[tuple[int, str]],
    report: CopyReport,
    say: Callable[[str], None],
    shown: str,
) -> None:
    started = time.monotonic()
    tables, order = await _prepare(conn, source, report, shown)
    async with conn.transaction():
        await _lock_empty(conn, order, shown)
        await _load(conn, source, tables, order, report, say)
        await _verify(conn, tables, versions, report, shown)
        report.seconds = time.monotonic() - started
        bad = [t.name for t in report.tables if not t.ok]
        if bad:
            raise MigrateError(
                f"verification failed for {', '.join(bad)}: the rows read back from PostgreSQL differ from"
                " the source's; nothing was committed",
                "the database at --to is left empty; please report this with the table printed above",
                report,
                code=1,
            )


async def _prepare(
    conn: asyncpg.Connection[Any], source: Source, report: CopyReport, shown: str
) -> tuple[dict[str, TargetTable], list[str]]:
    """Refuse a database that is not orvad's, migrate it, and match its tables and columns to the source's;
    the tables and their copy order."""
    present = {
        str(r[0])
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm')"
        )
    }
    if present and SCHEMA_TABLE not in present:
        raise MigrateError(
            f"{shown} is not empty and not orvad's: it has tables ({', '.join(sorted(present)[:5])}...)",
            "to start over, create a new database (CREATE DATABASE orva) and pass it as --to",
        )
    try:  # the same refusal as orvad's start on the database: text must order bytewise, as on SQLite
        await check_collation(cast(Any, conn))
    except DatabaseUnusable as exc:
        raise MigrateError(
            f"{shown}: {exc}", "create the database as the message says and pass it as --to"
        ) from None
    try:
        target_version = await migrate(conn)
    except RuntimeError as exc:
        raise MigrateError(
            f"cannot migrate {shown}: {exc}",
            "give orvad migrate a new, empty database (CREATE DATABASE ...) as --to",
        ) from None
    if target_version != report.version:
        raise MigrateError(
            f"{shown} is at schema version {target_version}, the source at {report.version}",
            "give orvad migrate a new, empty database (CREATE DATABASE ...) as --to",
        )
    tables = await _target_tables(conn)
    wanted = {t for t in tables if t != SCHEMA_TABLE}
    have = {t for t in source.tables() if t != SCHEMA_TABLE}
    if wanted != have:
        raise MigrateError(
            f"the tables differ: only in the source {sorted(have - wanted)}, only in {shown} {sorted(wanted - have)}",
            "the source was changed outside orvad, or --to is not orvad's database: use a new database as --to",
        )
    for name in sorted(wanted):
        t = tables[name]
        if set(source.columns(name)) != set(t.columns):
            raise MigrateError(
                f"table {name}: the source's columns {sorted(source.columns(name))} are not"
                f" PostgreSQL's {sorted(t.columns)}",
                "the source was changed outside orvad; copy a file only orvad has migrated",
            )
        for column, pg_type in zip(t.columns, t.types, strict=True):
            if pg_type not in COPYABLE_TYPES:
                raise MigrateError(f"{name}.{column}: orvad migrate does not know how to copy {pg_type}", "")
    return tables, [t for t in copy_order(tables) if t in wanted]


async def _lock_empty(conn: asyncpg.Connection[Any], order: list[str], shown: str) -> None:
    """Lock every table against other writers (for the transaction) and refuse unless all are empty."""
    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    try:
        await conn.execute("LOCK TABLE " + ", ".join(_ident(t) for t in order) + " IN EXCLUSIVE MODE")
    except asyncpg.LockNotAvailableError:
        raise MigrateError(
            f"{shown} is in use (its tables stay locked by another session)",
            "stop every orvad that uses the database, then run orvad migrate again",
        ) from None
    filled = [
        t
        for t in order
        if t not in SEEDED and await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_ident(t)})")
    ]
    if filled:
        raise MigrateError(
            f"{shown} is not empty: rows in {', '.join(filled)}; orvad migrate copies into an empty"
            " database and never merges",
            "to start over, create a new database (CREATE DATABASE orva_new) and pass it as --to",
        )


async def _load(
    conn: asyncpg.Connection[Any],
    source: Source,
    tables: dict[str, TargetTable],
    order: list[str],
    report: CopyReport,
    say: Callable[[str], None],
) -> None:
    """Every table's rows, parents first, triggers off; identity sequences past the copied maximum."""
    for name in SEEDED & set(order):
        await conn.execute(f"DELETE FROM {_ident(name)}")
    triggered = [t for t in order if tables[t].triggers]
    for name in triggered:  # the KV usage counters are copied, not counted again by kv's triggers
        await conn.execute(f"ALTER TABLE {_ident(name)} DISABLE TRIGGER USER")
    for name in order:
        started = time.monotonic()
        result = await _copy_table(conn, source, tables[name])
        report.tables.append(result)
        if result.source_rows >= PROGRESS_ROWS:  # the long ones, as they finish; the table says the rest
            say(f"copied {name}: {result.source_rows} rows in {time.monotonic() - started:.1f} s")
        for column in tables[name].identity:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence($1, $2), m) FROM"
                f" (SELECT MAX({_ident(column)}) AS m FROM {_ident(name)}) AS top WHERE m IS NOT NULL",
                _ident(name),
                column,
            )
    for name in triggered:
        await conn.execute(f"ALTER TABLE {_ident(name)} ENABLE TRIGGER USER")


async def _verify(
    conn: asyncpg.Connection[Any],
    tables: dict[str, TargetTable],
    versions: list[tuple[int, str]],
    report: CopyReport,
    shown: str,
) -> None:
    """Read every copied table back (inside the copy's transaction) into its count and checksum."""
    target_versions = [
        (int(r[0]), str(r[1]))
        for r in await conn.fetch(f"SELECT version, name FROM {SCHEMA_TABLE} ORDER BY version")
    ]
    if target_versions != versions:
        raise MigrateError(
            f"{SCHEMA_TABLE} differs: the source's {versions[-1]} against {shown}'s {target_versions[-1:]}",
            "the source was changed outside orvad; nothing was committed",
        )
    for result in report.tables:
        digest = RowDigest(result.name)
        columns = ", ".join(_ident(c) for c in tables[result.name].columns)
        async for row in conn.cursor(f"SELECT {columns} FROM {_ident(result.name)}", prefetch=FETCH_ROWS):
            digest.add(tuple(row))
        result.target_rows, result.target_sum = digest.rows, digest.hexdigest()


async def _copy_table(conn: asyncpg.Connection[Any], source: Source, table: TargetTable) -> TableResult:
    digest = RowDigest(table.name)
    pairs = list(zip(table.columns, table.types, strict=True))

    result = TableResult(table.name, 0, "")

    def records() -> Iterator[tuple[Any, ...]]:
        for where, *values in source.rows(table.name, table.columns):
            out = []
            for index, ((column, pg_type), value) in enumerate(zip(pairs, values, strict=True)):
                if pg_type == "text" and isinstance(value, str | bytes) and "\x00" in _as_str(value):
                    # a NUL comes back as U+FFFD: the checksum's side of the one conversion that changes text
                    values[index] = _as_str(value).replace("\x00", NUL_STANDIN).encode()
                    result.nul_values += 1
                try:
                    out.append(convert(pg_type, value))
                except Unconvertible as exc:
                    raise MigrateError(
                        f"{table.name}.{column}, {where}: {exc}, which a PostgreSQL {pg_type} column cannot"
                        " hold; nothing was committed",
                        "the file was changed outside orvad: fix or delete that row (sqlite3, on a copy of the"
                        " file) and run orvad migrate again into the same, still empty, database",
                    ) from None
            digest.add(values)
            yield tuple(out)

    await conn.copy_records_to_table(table.name, records=records(), columns=table.columns)
    result.source_rows, result.source_sum = digest.rows, digest.hexdigest()
    return result


def _as_str(value: str | bytes) -> str:
    """Text as read for the NUL check (a BLOB bound for a TEXT column: its UTF-8, else no text at all)."""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")
