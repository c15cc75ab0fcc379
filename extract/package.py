"""The portable backup package (step 2) and its verification on receipt (step 3).

Layout::

    package/
      manifest.json            files, rows, SHA-256, bytes; sources (passwords redacted)
      SXXK/schema.json         the legacy structure as found (columns, SQL types, logical keys)
      SXXK/<table>.parquet     one file per table, written batch by batch
      SLXNK/...

Nothing is held in memory beyond one record batch per table.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy.engine import Engine

from extract.errors import PackageIntegrityError
from extract.legacy_schema import TABLES_BY_DB
from extract.source import IDENT_RE, ColumnNotTyped, check_ident, iter_batches, redact, reflect, text_schema

MANIFEST = "manifest.json"


@dataclass
class PackageFile:
    db: str
    table: str
    path: str  # relative to the package root
    rows: int
    sha256: str
    bytes: int


@dataclass
class PackageManifest:
    branch: str
    sources: dict[str, str]
    files: list[PackageFile] = field(default_factory=list)
    schema_files: dict[str, dict[str, str]] = field(default_factory=dict)  # db -> {path, sha256}
    attachments: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 (the branch's reports)
    # the engine's own backups (pg_dump, mariadb-dump, SQLite backup): relative path -> {tool, sha256, bytes}
    native_backups: dict[str, dict[str, object]] = field(default_factory=dict)

    def rows(self) -> dict[str, int]:
        return {f"{f.db}.{f.table}": f.rows for f in self.files}

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def read(cls, root: Path) -> PackageManifest:
        p = root / MANIFEST
        if not p.exists():
            raise PackageIntegrityError(f"package has no {MANIFEST}", table=str(p),
                                        hint="re-run step 2 at the branch and hand the whole package over")
        d = json.loads(p.read_text(encoding="utf-8"))
        return cls(branch=d["branch"], sources=d["sources"], files=[PackageFile(**f) for f in d["files"]],
                   schema_files=d.get("schema_files", {}), attachments=d.get("attachments", {}),
                   native_backups=d.get("native_backups", {}))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def write_package(branch: str, sources: dict[str, Engine], root: Path, batch_rows: int = 50_000,
                  on_rows: Callable[[str, int], None] | None = None,
                  attachments: dict[str, Path] | None = None,
                  native: dict[str, tuple[Path, str]] | None = None) -> PackageManifest:
    """Back up every table of every source DB into ``root`` (Parquet per table + schema + manifest).

    ``attachments`` (name → file) are the reports handed over with the copies (Phụ lục IV bước 3);
    they go under ``reports/`` and into the manifest with their SHA-256. ``native`` (label → (file,
    tool)) are the engine's own backups, moved under ``native/`` and listed with their SHA-256.
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    man = PackageManifest(branch=branch, sources={db: redact(e.url) for db, e in sources.items()})
    if attachments:
        (root / "reports").mkdir()
        for name, src in attachments.items():
            dst = root / "reports" / name
            shutil.copyfile(src, dst)
            man.attachments[f"reports/{name}"] = sha256_file(dst)
    if native:
        (root / "native").mkdir()
        for label, (src, tool) in native.items():
            dst = root / "native" / src.name
            shutil.move(src, dst)
            man.native_backups[f"native/{dst.name}"] = {"label": label, "tool": tool, "sha256": sha256_file(dst),
                                                       "bytes": dst.stat().st_size}
    for db, engine in sources.items():
        check_ident(db, "database label")
        md = reflect(engine)
        ddir = root / db
        ddir.mkdir()
        keys = {t.name.casefold(): list(t.key) for t in TABLES_BY_DB.get(db, ())}
        schema_doc = {name: {"columns": {c.name: str(c.type) for c in t.columns}, "key": keys.get(name.casefold(), [])}
                      for name, t in sorted(md.tables.items())}
        declared = {t.name.casefold(): t for t in TABLES_BY_DB.get(db, ())}
        for name in sorted(md.tables):
            table = md.tables[name]
            path = ddir / f"{file_stem(name)}.parquet"
            lt = declared.get(name.casefold())
            scales = {}  # floats of a column backed up as text are printed at the declared scale
            if lt is not None:
                types = {c.casefold(): ty for c, ty in lt.columns}
                for c in table.columns:
                    m = re.match(r"^(numeric)\((\d+),(\d+)\)$|^(money)$", types.get(c.name.casefold(), ""))
                    if m:
                        scales[c.name] = 4 if m.group(4) else int(m.group(3))
            as_text: frozenset[str] = frozenset()
            while True:  # a column holding values its type cannot take is backed up as the text it holds
                rows = 0
                try:
                    with pq.ParquetWriter(path, text_schema(table, as_text), compression="zstd") as w:
                        for batch in iter_batches(engine, table, batch_rows, as_text=as_text, text_scales=scales,
                                                  on_rows=(lambda n, _t=name: on_rows(_t, n)) if on_rows else None):
                            w.write_batch(batch)
                            rows += batch.num_rows
                    break
                except ColumnNotTyped as exc:
                    if on_rows and rows:
                        on_rows(name, -rows)
                    as_text |= {exc.column}
            if as_text:
                schema_doc[name]["stored_as_text"] = sorted(as_text)
            man.files.append(PackageFile(db, name, f"{db}/{path.name}", rows, sha256_file(path),
                                         path.stat().st_size))
        sp = ddir / "schema.json"
        sp.write_text(json.dumps(schema_doc, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
        man.schema_files[db] = {"path": f"{db}/schema.json", "sha256": sha256_file(sp)}
    (root / MANIFEST).write_text(man.to_json(), encoding="utf-8")
    return man


def file_stem(table: str) -> str:
    """The package file name of a table: its own name, or — for a name that is not a plain identifier (``Sheet1$``,
    ``Bảng tạm``, ``a b``; SQL Server allows them) — a safe name derived from it, never colliding."""
    if IDENT_RE.match(table):
        return table
    safe = re.sub(r"[^A-Za-z0-9_]", "_", table)[:60]
    return f"x_{safe}_{hashlib.sha256(table.encode()).hexdigest()[:8]}"


def verify_package(root: Path, expected: PackageManifest | None = None) -> PackageManifest:
    """Check every file of a received package against its manifest (and the sender's, if given).

    Raises:
        PackageIntegrityError: naming the first file whose checksum, size or row count differs,
            or a file that is missing.
    """
    man = PackageManifest.read(root)
    if expected is not None and expected.to_json() != man.to_json():
        raise PackageIntegrityError("the received manifest differs from the one the branch reported",
                                    table=MANIFEST, hint="ask the branch to hand over the package again")
    for db, sf in man.schema_files.items():
        p = root / sf["path"]
        if not p.exists() or sha256_file(p) != sf["sha256"]:
            raise PackageIntegrityError(f"schema file of {db} is missing or altered", table=sf["path"],
                                        hint="ask the branch to hand over the package again")
    for rel, digest in man.attachments.items():
        p = root / rel
        if not p.exists() or sha256_file(p) != digest:
            raise PackageIntegrityError(f"report handed over with the package is missing or altered: {rel}",
                                        table=rel, hint="ask the branch for the signed reports again")
    for rel, nb in man.native_backups.items():
        p = root / rel
        if not p.exists() or sha256_file(p) != nb["sha256"]:
            raise PackageIntegrityError(f"native backup is missing or altered: {rel}", table=rel,
                                        hint="ask the branch to hand over the package again")
    for f in man.files:
        p = root / f.path
        if not p.exists():
            raise PackageIntegrityError(f"package file missing: {f.path}", table=f.path,
                                        hint="ask the branch to hand over the package again")
        digest = sha256_file(p)
        if digest != f.sha256:
            raise PackageIntegrityError(f"checksum mismatch for {f.path}: manifest {f.sha256[:12]}…, "
                                        f"received {digest[:12]}…", table=f.path,
                                        hint="the copy is corrupt or altered; copy it again from the branch")
        rows = pq.ParquetFile(p).metadata.num_rows
        if rows != f.rows:
            raise PackageIntegrityError(f"row count mismatch for {f.path}: manifest {f.rows}, file {rows}",
                                        table=f.path, hint="copy the package again from the branch")
    return man


def copy_package(src: Path, dst: Path) -> Path:
    """Hand the package over: copy it into the HQ inbox directory (replacing an earlier copy)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst
