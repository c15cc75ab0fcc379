"""Branch source databases: read-only connection, freeze and its proof, streaming reads to Arrow.

Any source is a SQLAlchemy URL. The embedded default is SQLite, opened with ``mode=ro`` so that this
process cannot write to it, and the freeze is *proven* by a write probe that must be refused.
Server engines (SQL Server, MariaDB, PostgreSQL over pyodbc) are the "Real engines" issue; until
then :func:`freeze_source` says so instead of pretending.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from extract.errors import ExtractError, SourceNotFrozen, SourceUnavailable

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_ident(name: str, what: str = "identifier") -> str:
    """Validate an identifier before it is quoted into SQL (names come from reflection/config)."""
    if not IDENT_RE.match(name):
        raise ExtractError(f"refusing unsafe {what} {name!r}", table=name,
                           hint="identifiers must match [A-Za-z_][A-Za-z0-9_]*")
    return name


def redact(url: str | URL) -> str:
    """URL for logs and reports: password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparseable URL: show nothing of it
        return "<unparseable url>"


def sqlite_path(url: str | URL) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    db = u.database
    if db.startswith("file:"):
        db = db[5:]
    return Path(db)


def open_source(url: str, *, read_only: bool = True) -> Engine:
    """Engine on a branch source. SQLite sources are opened read-only (URI ``mode=ro``)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path = sqlite_path(u)
        if path is None or not path.exists():
            raise ExtractError(f"source database file not found: {path}", table=str(path),
                               hint="check the branch config's source URL, or run `ecm sample generate`")
        if read_only:
            return sa.create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")
        return sa.create_engine(f"sqlite:///{path.resolve()}")
    try:
        return sa.create_engine(u, pool_pre_ping=True)
    except Exception as exc:  # noqa: BLE001
        raise SourceUnavailable(f"cannot open source {redact(u)}: {exc}") from exc


@dataclass(frozen=True)
class FreezeProof:
    engine: str
    method: str
    probe_sql: str
    refused_with: str
    at: str


def freeze_source(engine: Engine) -> FreezeProof:
    """Freeze the source (Phụ lục IV 2.1, READ ONLY) and prove it with a refused write.

    SQLite: the source was opened with ``mode=ro``; the probe must fail. Other engines are the
    "Real engines" issue and raise until then.
    """
    backend = engine.url.get_backend_name()
    if backend != "sqlite":
        raise ExtractError(f"freezing a {backend} source is not implemented yet",
                           hint="use a SQLite source for now (the Real engines issue adds server freezes)")
    probe = "CREATE TABLE __ecm_freeze_probe (x INTEGER)"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(probe)
            conn.exec_driver_sql("DROP TABLE __ecm_freeze_probe")
    except sa.exc.OperationalError as exc:
        msg = str(exc.orig)
        if "readonly" in msg or "read-only" in msg or "read only" in msg:
            return FreezeProof("sqlite", "read-only open (mode=ro)", probe, msg,
                               datetime.now(timezone.utc).isoformat(timespec="seconds"))
        raise ExtractError(f"freeze probe failed for another reason: {msg}") from exc
    raise SourceNotFrozen("a write to the frozen source was accepted", table=str(engine.url.database),
                          hint="open the source read-only; do not continue the migration")


def reflect(engine: Engine) -> sa.MetaData:
    md = sa.MetaData()
    try:
        md.reflect(engine)
    except sa.exc.OperationalError as exc:
        raise SourceUnavailable(f"cannot read the structure of {redact(engine.url)}: {exc.orig}") from exc
    return md


def arrow_type(t: sa.types.TypeEngine) -> pa.DataType:  # type: ignore[type-arg]
    """SQLAlchemy column type → Arrow type (decimals stay exact, text stays text)."""
    if isinstance(t, sa.Numeric) and not isinstance(t, sa.Float):
        p = t.precision or 38
        s = t.scale or 0
        return pa.decimal128(min(p, 38), s)
    if isinstance(t, sa.Float):
        return pa.float64()
    if isinstance(t, sa.SmallInteger):
        return pa.int32()
    if isinstance(t, sa.Integer):
        return pa.int64()
    if isinstance(t, sa.DateTime):
        return pa.timestamp("us")
    if isinstance(t, sa.Date):
        return pa.date32()
    if isinstance(t, sa.Boolean):
        return pa.bool_()
    if isinstance(t, sa.LargeBinary):
        return pa.binary()
    return pa.string()


def arrow_schema(table: sa.Table) -> pa.Schema:
    fields = []
    for c in table.columns:
        fields.append(pa.field(c.name, arrow_type(c.type), nullable=True,
                               metadata={b"sql_type": str(c.type).encode()}))
    return pa.schema(fields)


def iter_batches(engine: Engine, table: sa.Table, batch_rows: int = 50_000,
                 on_rows: Callable[[int], None] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a whole table as Arrow record batches of at most ``batch_rows`` rows."""
    schema = arrow_schema(table)
    stmt = sa.select(table)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(stmt)
            for part in result.partitions(batch_rows):
                cols = list(zip(*part, strict=True)) if part else [() for _ in schema]
                arrays = [pa.array(list(col), type=f.type) for col, f in zip(cols, schema, strict=True)]
                batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
                if on_rows:
                    on_rows(batch.num_rows)
                yield batch
    except sa.exc.OperationalError as exc:
        raise SourceUnavailable(f"reading {table.name} failed: {exc.orig}", table=table.name) from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ExtractError(f"a value of {table.name} does not fit its declared type: {exc}", table=table.name,
                           hint="fix the value at the branch (step 1) or report it as a schema finding") from exc


def count_rows(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
