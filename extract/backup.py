"""Native backups (Phụ lục IV 2.2) beside the portable Parquet package, one per engine.

=============  =========================================================  =====================
engine         how                                                        file
=============  =========================================================  =====================
SQL Server     ``BACKUP DATABASE [db] TO DISK = N'…' WITH CHECKSUM,       ``<db>.bak`` (written
               COPY_ONLY, INIT`` (runs on the server)                      by the server)
PostgreSQL     ``pg_dump --format=custom``                                ``<label>.pgdump``
MariaDB        ``mariadb-dump --single-transaction``                      ``<label>.sql``
SQLite         the online backup API                                      ``<label>.sqlite``
=============  =========================================================  =====================

Passwords reach the tools through their environment (PGPASSWORD, MYSQL_PWD), never their command
line, and no command line with a credential is logged. A missing tool is a clear error naming it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from extract.errors import ExtractError
from extract.freeze import dialect_of
from extract.source import check_ident, redact, sqlite_path


@dataclass(frozen=True)
class NativeBackup:
    label: str
    engine: str
    tool: str
    path: Path | None  # None when the file is written on the server (SQL Server)
    statement: str | None = None


def mssql_backup_statement(database: str, server_path: str) -> str:
    db = dialect_of("mssql").identifier_preparer.quote_identifier(check_ident(database, "database name"))
    return f"BACKUP DATABASE {db} TO DISK = N'{server_path.replace(chr(39), chr(39) * 2)}' WITH CHECKSUM, COPY_ONLY, INIT"


def _run(cmd: list[str], env_extra: dict[str, str], what: str) -> None:
    if shutil.which(cmd[0]) is None:
        raise ExtractError(f"{cmd[0]} is not installed; cannot make the native backup of {what}",
                           hint=f"install {cmd[0]} (Debian: postgresql-client / mariadb-client), or set "
                                "native_backup = false in the branch config to rely on the Parquet package")
    res = subprocess.run(cmd, env={**os.environ, **env_extra}, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise ExtractError(f"{cmd[0]} failed for {what} (exit {res.returncode}): {res.stderr.strip()[:400]}",
                           hint="check the admin account's rights and the server log")


def native_backup(label: str, url: str, out_dir: Path, admin_url: str | None = None) -> NativeBackup:
    """Back up the database of ``url`` with the engine's own tool into ``out_dir``."""
    u = make_url(url)
    backend = u.get_backend_name()
    out_dir.mkdir(parents=True, exist_ok=True)
    check_ident(label, "database label")
    if backend == "sqlite":
        src = sqlite_path(u)
        dst = out_dir / f"{label}.sqlite"
        dst.unlink(missing_ok=True)
        with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as s, sqlite3.connect(dst) as d:
            s.backup(d)
        d.close()
        return NativeBackup(label, backend, "sqlite3 online backup", dst)
    a = make_url(admin_url) if admin_url else u
    host, port, user = a.host or "127.0.0.1", a.port, a.username or ""
    if backend == "postgresql":
        dst = out_dir / f"{label}.pgdump"
        cmd = ["pg_dump", "--format=custom", "--no-password", "-h", host, "-p", str(port or 5432), "-f", str(dst)]
        if user:
            cmd += ["-U", user]
        _run(cmd + [u.database or ""], {"PGPASSWORD": a.password or ""} if a.password else {}, redact(u))
        return NativeBackup(label, backend, "pg_dump --format=custom", dst)
    if backend in ("mysql", "mariadb"):
        dst = out_dir / f"{label}.sql"
        tool = "mariadb-dump" if shutil.which("mariadb-dump") else "mysqldump"
        cmd = [tool, "--single-transaction", "--routines", "--default-character-set=utf8mb4", "-h", host,
               "-P", str(port or 3306), f"--result-file={dst}"]
        if user:
            cmd += ["-u", user]
        _run(cmd + [u.database or ""], {"MYSQL_PWD": str(a.password)} if a.password else {}, redact(u))
        return NativeBackup(label, backend, f"{tool} --single-transaction", dst)
    if backend == "mssql":
        raise ExtractError("SQL Server native backups run on the server: run the statement of "
                           "extract.backup.mssql_backup_statement there (not available on this machine)",
                           hint="set native_backup = false for SQL Server sources and hand the .bak over with "
                                "the package")
    raise ExtractError(f"no native backup for {backend} sources", hint="set native_backup = false")
