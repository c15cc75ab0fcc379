"""A finding's rows for the desk: its keys as a table, filtered and paged, with the source row from staging next
to each key (and, for step-6 comparisons, the expected and the converted value)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extract import staging
from extract.source import check_ident
from transform.errors import MigrationError

SOURCE_DBS = ("SXXK", "SLXNK")
_NOT_KEYS = {"n", "columns"}  # the count of a duplicate, the columns a TCVN3 hit names: facts, not key columns


@dataclass
class RowsPage:
    columns: list[str]
    rows: list[dict[str, Any]]  # {"key": {col: val}, "text": "…", "source": [ {col: val} ], "compare": {…}}
    total: int
    matching: int
    page: int
    pages: int
    source_columns: list[str] = field(default_factory=list)
    source_note: str = ""


def _clean(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def parse_keys(keys_json: str | None) -> list[Any]:
    """The keys stored with a finding (Python's json reads the NaN that pandas wrote for a missing value)."""
    items = json.loads(keys_json or "[]")
    return [{k: _clean(v) for k, v in i.items()} if isinstance(i, dict) else i for i in items]


def finding_keys(finding: dict[str, Any]) -> set[str]:
    """The keys of a finding's rows as the desk's correction forms name them (``COL=val|…``)."""
    table = str(finding.get("table_name") or "")
    out = set()
    for i in parse_keys(finding.get("keys_json")):
        out.add(key_text(_quarantined_key(i, table) if _is_quarantined(i, table) else i))
    return out


def _is_quarantined(item: Any, table: str) -> bool:
    return isinstance(item, str) and bool(table) and item.startswith(table + "|")


def _quarantined_key(item: str, table: str) -> dict[str, Any]:
    """``DB.TABLE|COL=val|…`` (a quarantined row's source key) as a key dict."""
    pairs = (p.split("=", 1) for p in item[len(table) + 1:].split("|") if "=" in p)
    return {k: None if v == "None" else v for k, v in pairs}


def key_text(item: Any) -> str:
    """A key as the reports and the correction file print it: ``COL=val|COL=val`` (None for a missing value)."""
    if isinstance(item, dict):
        return "|".join(f"{k}={_str(v)}" for k, v in item.items() if k not in _NOT_KEYS)
    return str(item)


def _str(v: Any) -> str:
    if v is None:
        return "None"
    return str(v).strip()


def rows_page(finding: dict[str, Any], checks: list[dict[str, Any]], staging_path: Path | None, *, q: str = "",
              page: int = 1, size: int = 25, memory_limit: str = "256MB") -> RowsPage:
    items = parse_keys(finding.get("keys_json"))
    ql = q.strip().lower()
    matching = [i for i in items if not ql or ql in json.dumps(i, ensure_ascii=False, default=str).lower()]
    pages = max(1, math.ceil(len(matching) / size))
    page = min(max(1, page), pages)
    chunk = matching[(page - 1) * size: page * size]
    columns: list[str] = []
    for i in chunk:
        if isinstance(i, dict):
            columns += [k for k in i if k not in columns]
    by_key = {(c.get("table_name"), c.get("key"), c.get("field")): c for c in checks}
    table = str(finding.get("table_name") or "")
    rows = []
    for i in chunk:
        r: dict[str, Any] = {"key": i if isinstance(i, dict) else {}, "text": key_text(i), "source": [],
                             "compare": None, "raw": i, "quarantine": [], "source_keys": []}
        if _is_quarantined(i, table):  # a quarantined row: DB.TABLE|COL=val|…
            r["key"] = _quarantined_key(i, table)
            r["text"] = key_text(r["key"])
            columns += [k for k in r["key"] if k not in columns]
        elif isinstance(i, str) and i.count("|") >= 2:  # a step-6 comparison: TABLE|key|field
            table, rest = i.split("|", 1)
            key, _, fld = rest.rpartition("|")
            c = by_key.get((table, key, fld))
            if c:
                r["compare"] = {"table": table, "key": key, "field": fld, "expected": c.get("expected"),
                                "actual": c.get("actual")}
        rows.append(r)
    out = RowsPage(columns, rows, len(items), len(matching), page, pages)
    db, _, name = table.partition(".")
    if staging_path is not None and db in SOURCE_DBS and name and any(r["key"] for r in rows):
        _attach_source(out, db, name, staging_path, memory_limit)
    return out


def _attach_source(out: RowsPage, db: str, table: str, staging_path: Path, memory_limit: str) -> None:
    """The source rows each key names, read from staging (read-only, one short connection)."""
    try:
        con = staging.connect(staging_path, read_only=True, memory_limit=memory_limit, lock_wait_seconds=2)
    except MigrationError:
        out.source_note = "Dữ liệu trung gian đang được lượt chạy sử dụng; các dòng nguồn sẽ hiện khi lượt chạy dừng."
        return
    try:
        target = f'"{staging.src_schema(db)}"."{check_ident(table, "table name")}"'
        have = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [staging.src_schema(db), table]).fetchall()}
        if not have:
            out.source_note = f"Bảng {db}.{table} không có trong dữ liệu trung gian."
            return
        cols: list[str] = []
        for r in out.rows:
            conds, params = [], []
            for k, v in r["key"].items():
                if k in _NOT_KEYS or k not in have:
                    continue
                conds.append(f'trim(CAST("{check_ident(k, "column")}" AS VARCHAR)) IS NOT DISTINCT FROM ?')
                params.append(None if v is None else str(v).strip())
            if not conds:
                continue
            cur = con.execute(f"SELECT rowid, * FROM {target} WHERE {' AND '.join(conds)} LIMIT 5", params)
            names = [d[0] for d in cur.description][1:]
            cols += [c for c in names if c not in cols]
            found = cur.fetchall()
            r["source"] = [dict(zip(names, (_display(v) for v in vals[1:]), strict=True)) for vals in found]
            # the key a correction names: the row's own key, plus its staging row number when several share it
            r["source_keys"] = [r["text"] + (f"|{staging.ROW_MARK}={vals[0]}" if len(found) > 1 else "")
                                for vals in found]
        out.source_columns = cols
        raw = [r["raw"] for r in out.rows if isinstance(r["raw"], str)]
        if raw and ("quarantine", "rows") in {tuple(x) for x in con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}:
            why: dict[str, list[tuple[str, str]]] = {}
            for k, reason, detail in con.execute(
                    "SELECT source_key, reason, detail FROM quarantine.rows WHERE source_key IN (SELECT unnest(?))",
                    [raw]).fetchall():
                why.setdefault(k, []).append((reason, detail or ""))
            for r in out.rows:
                r["quarantine"] = why.get(r["raw"], []) if isinstance(r["raw"], str) else []
    finally:
        con.close()


def _display(v: Any) -> Any:
    if v is None:
        return None
    if hasattr(v, "normalize") and type(v).__name__ == "Decimal":
        return format(v.normalize(), "f")
    return v
