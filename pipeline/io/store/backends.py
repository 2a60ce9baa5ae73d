"""One small interface over the two ClickHouse backends: embedded chdb and a server (native protocol).

Parameters are written `%(name)s` in SQL and substituted client-side for both backends, so one SQL
text runs on both (the server's own `{name:Type}` parameters do not exist on old servers).
"""
from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from pipeline.redact import redact_url


class StoreError(Exception):
    """The statement or the data is wrong: retrying will not help."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now (refused, gone, timed out): retry with backoff."""


class StoreHeld(StoreError):
    """The embedded store's directory is open in another process (it belongs to one at a time)."""


class Store(Protocol):
    url: str

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None: ...

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def insert(self, table: str, rows: list[dict[str, Any]], dedup_token: str | None = None) -> None: ...

    def insert_json(self, table: str, body: bytes, dedup_token: str | None = None) -> None:
        """Rows given as one JSON array of objects (bytes), as they travel on the store-rows topic."""
        ...

    def close(self) -> None: ...


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _table_name(table: str) -> str:
    if not _IDENTIFIER.match(table):
        raise StoreError(f"not a table name: {table!r}")
    return table


def quote(value: Any) -> str:
    """A Python value as a ClickHouse literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    elif isinstance(value, date):
        value = value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(quote(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def render(sql: str, params: dict[str, Any] | None) -> str:
    if not params:
        return sql
    return sql % {name: quote(value) for name, value in params.items()}


def split_statements(text: str) -> list[str]:
    """Statements separated by `;` at the end of a line; `--` comment lines are dropped."""
    statements, current = [], []
    for line in text.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if statement:
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


# ---------------------------------------------------------------- chdb (embedded)

_chdb_lock = threading.Lock()
_chdb_open: dict[str, "ChdbStore"] = {}


class ChdbStore:
    """The embedded engine. chdb holds one data directory per process: `open_store` keeps one per path."""

    def __init__(self, url: str, path: Path, database: str, held: Any = None) -> None:
        from chdb import session

        self.url = url
        self.path = path
        self.database = database
        path.mkdir(parents=True, exist_ok=True)
        self._held = held if held is not None else _hold(path)  # given: the lock a parent took for us
        self._session = session.Session(str(path))
        self._lock = threading.Lock()
        if database != "default":
            self._run(f"CREATE DATABASE IF NOT EXISTS {_table_name(database)}")
        self._run(f"USE {_table_name(database)}")
        self._run("SET output_format_json_quote_64bit_integers = 0")

    def _run(self, sql: str, fmt: str = "CSV") -> bytes:
        from chdb import ChdbError

        if self._session is None:
            raise StoreError(f"store {self.url} is closed")
        with self._lock:
            try:
                result = self._session.query(sql, fmt)
            except ChdbError as exc:
                raise StoreError(str(exc).strip()) from None
        if result.has_error():
            raise StoreError(result.error_message())
        return result.bytes()

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._run(render(sql, params))

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        data = self._run(render(sql, params), "JSONEachRow")
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]

    def insert(self, table: str, rows: list[dict[str, Any]], dedup_token: str | None = None) -> None:
        if rows:
            self.insert_json(table, orjson.dumps(rows, option=orjson.OPT_UTC_Z), dedup_token)  # one array: one dumps

    def insert_json(self, table: str, body: bytes, dedup_token: str | None = None) -> None:
        """The bytes go to the engine's JSONEachRow parser as they are, through chdb's streaming
        insert: no Python object per row or field, no copy into the query text (which cost the
        engine twice: 200,000 event rows in batches of 20,000 took 9.7 us of CPU a row from
        dicts through the query text, 5-6 us from bytes through the streaming insert)."""
        from chdb import ChdbError

        settings = ["date_time_input_format = 'best_effort'"]
        if dedup_token:
            settings.append(f"insert_deduplication_token = {quote(dedup_token)}")
        statement = f"INSERT INTO {_table_name(table)} SETTINGS {', '.join(settings)}"
        with self._lock:
            if self._session is None:
                raise StoreError(f"store {self.url} is closed")
            try:
                inserting = self._session.send_insert(statement, "JSONEachRow")
                try:
                    inserting.append(body)
                except BaseException:
                    with contextlib.suppress(Exception):
                        inserting.cancel()
                    raise
                inserting.finish()
            except (ChdbError, RuntimeError) as exc:
                message = str(exc).strip()
                if message.startswith("Streaming insert"):  # chdb's wrapper: the engine's own words follow
                    message = message.split(": ", 1)[-1]
                raise StoreError(message) from None

    def close(self) -> None:
        with _chdb_lock:
            if self._session is not None:
                self._session.close()
                self._session = None
                self._held.close()
            if _chdb_open.get(str(self.path)) is self:
                del _chdb_open[str(self.path)]


def _hold(path: Path) -> Any:
    """An exclusive lock on `PATH.lock` for as long as this process keeps the store open."""
    import fcntl

    handle = open(f"{path}.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StoreHeld(f"the embedded store {path} is open in another process (a worker?); "
                        "it belongs to one process at a time") from None
    return handle


def _open_chdb(url: str, create: bool = False) -> ChdbStore:
    parts = urlsplit(url)
    raw_path = unquote((parts.netloc or "") + parts.path)
    if not raw_path:
        raise StoreError(f"chdb URL without a path: {url!r}")
    path = Path(raw_path).resolve()
    database = parse_qs(parts.query).get("database", ["default"])[0]
    with _chdb_lock:
        current = next(iter(_chdb_open.values()), None)
        if current is not None:
            if current.path != path:
                raise StoreError(f"chdb has {current.path} open in this process; close it before opening {path}")
            if current.database != database:
                raise StoreError(f"chdb store {path} is open with database {current.database!r}, not {database!r}")
            return current
        if not create and not path.exists():
            raise StoreError(f"chdb store {path} does not exist (a mistyped path?); "
                             "`mimamori migrate` creates a new store")
        store = ChdbStore(url, path, database)
        _chdb_open[str(path)] = store
        return store


# ---------------------------------------------------------------- server (clickhouse-driver)

def _parse_datetime(value: Any) -> Any:
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return value


def _converter(ch_type: str) -> Callable[[Any], Any] | None:
    """What a value from a row needs before the driver takes it; None: nothing (most columns)."""
    inner = ch_type
    for wrapper in ("LowCardinality(", "Nullable("):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper):-1]
    if inner.startswith("DateTime"):
        return _parse_datetime
    if inner == "Date" or inner == "Date32":
        return lambda v: date.fromisoformat(v) if isinstance(v, str) else v
    if inner.startswith("Array("):
        item = _converter(inner[len("Array("):-1])
        if item is None:
            return lambda v: v if v is not None else []
        return lambda v: [item(x) for x in v] if v is not None else []
    if inner.startswith(("UInt", "Int")):
        return lambda v: int(v) if isinstance(v, bool) else v
    return None


@dataclass
class _Columns:
    names: list[str]
    converters: list[Callable[[Any], Any] | None]


def _is_connection_error(exc: Exception) -> bool:
    from clickhouse_driver import errors

    if isinstance(exc, (errors.NetworkError, errors.SocketTimeoutError, EOFError, OSError, ConnectionError)):
        return True
    return isinstance(exc, errors.ServerException) and getattr(exc, "code", None) in (
        159, 160, 202, 209, 210, 241, 242, 252, 319, 394, 425,  # timeouts, too many, readonly, memory
    )


def _compression(asked: str | None) -> bool | str:
    """lz4 block compression (the default; lz4 and clickhouse-cityhash are dependencies), `lz4hc`,
    or off with `compression=0`."""
    if asked in ("0", "false", "no"):
        return False
    if asked in (None, "", "1", "true", "yes", "lz4"):
        return True
    if asked == "lz4hc":
        return asked
    raise StoreError(f"unknown compression {asked!r}: expected lz4, lz4hc or 0")


class ServerStore:
    """A ClickHouse server over the native protocol (compression on; `?secure=1` for TLS)."""

    def __init__(self, url: str) -> None:
        from clickhouse_driver import Client

        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        secure = query.get("secure") in ("1", "true", "yes")
        self.url = url
        self.database = (parts.path or "/default").lstrip("/") or "default"
        self._client = Client(
            host=parts.hostname or "localhost", port=parts.port or (9440 if secure else 9000),
            user=unquote(parts.username or "default"), password=unquote(parts.password or ""),
            database=self.database, compression=_compression(query.get("compression")), secure=secure,
            verify=query.get("verify", "1") not in ("0", "false"),
            connect_timeout=float(query.get("connect_timeout", 5)),
            send_receive_timeout=float(query.get("timeout", 30)),
        )
        self._columns: dict[str, _Columns] = {}
        self._version: tuple[int, ...] | None = None

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # the driver raises many unrelated types; sort them here
            if _is_connection_error(exc):
                self._client.disconnect()
                raise StoreUnavailable(f"{redact_url(self.url)}: {exc}") from exc
            raise StoreError(str(exc).strip()) from exc

    def version(self) -> tuple[int, ...]:
        if self._version is None:
            text = self._call(lambda: self._client.execute("SELECT version()"))[0][0]
            self._version = tuple(int(p) for p in text.split(".")[:3] if p.isdigit())
        return self._version

    def supports_dedup_token(self) -> bool:
        return self.version() >= (22, 2)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._call(lambda: self._client.execute(render(sql, params)))

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        rows, columns = self._call(lambda: self._client.execute(render(sql, params), with_column_types=True))
        names = [name for name, _ in columns]
        return [dict(zip(names, row)) for row in rows]

    def _table_columns(self, table: str) -> _Columns:
        if table not in self._columns:
            described = self._call(lambda: self._client.execute(f"DESCRIBE TABLE {table}"))
            plain = [row for row in described if len(row) < 2 or not row[2] in ("MATERIALIZED", "ALIAS")]
            self._columns[table] = _Columns([r[0] for r in plain], [_converter(r[1]) for r in plain])
        return self._columns[table]

    def insert(self, table: str, rows: list[dict[str, Any]], dedup_token: str | None = None) -> None:
        if not rows:
            return
        columns = self._table_columns(_table_name(table))
        present = [i for i, name in enumerate(columns.names) if name in rows[0]]
        names = [columns.names[i] for i in present]
        data = []  # columnar: one list per column, the driver packs each whole; a converter only where needed
        for i, name in zip(present, names):
            convert = columns.converters[i]
            values = [row.get(name) for row in rows]
            data.append(values if convert is None else list(map(convert, values)))
        settings: dict[str, Any] = {}
        if dedup_token and self.supports_dedup_token():
            settings["insert_deduplication_token"] = dedup_token
        statement = f"INSERT INTO {table} ({', '.join(names)}) VALUES"
        self._call(lambda: self._client.execute(statement, data, settings=settings or None, columnar=True))

    def insert_json(self, table: str, body: bytes, dedup_token: str | None = None) -> None:
        try:
            rows = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"rows for {table}: {exc}") from None
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise StoreError(f"rows for {table}: expected a JSON array of objects")
        self.insert(table, rows, dedup_token)

    def close(self) -> None:
        self._client.disconnect()


def open_store(url: str, *, create: bool = False) -> Store:
    """`chdb:///ABS/PATH`, `chdb://./rel/path` (optionally `?database=NAME`) or
    `clickhouse://USER:PASS@HOST:PORT/DB[?secure=1]`. An embedded store whose directory does not
    exist is refused unless `create` (what migrates the store creates it; readers never do). The
    worker opens its store with `pipeline.io.store.holder.open_held_store` instead."""
    if url.startswith("chdb://"):
        return _open_chdb(url, create)
    if url.startswith("clickhouse://"):
        return ServerStore(url)
    raise StoreError(f"unknown store URL {redact_url(url)!r}: expected chdb:// or clickhouse://")
