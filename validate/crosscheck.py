"""Step 3 cross-check: the received package against the reports the branch handed over with it.

In full: rows per table (statistics report), declarations per office × type, and the closing-stock
statement (bảng kê chốt tồn) recomputed from the package. By sample (Phụ lục IV bước 3, "lấy mẫu ngẫu
nhiên"): seeded records of the package looked up in the reports.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from extract import staging
from extract.contract import ContractError, declared_views
from extract.errors import PackageIntegrityError
from extract.legacy_schema import ALL_TABLES
from extract.staging import sql_str
from validate.sampling import draw, zero_acceptance_sample_size

_DECLARED = {t.qualified.casefold(): t.qualified for t in ALL_TABLES}


def _declared(qualified: str) -> str:
    """``SXXK.dtokhaimd`` → ``SXXK.DTOKHAIMD`` (the declared spelling), other names unchanged."""
    return _DECLARED.get(qualified.casefold(), qualified)


def _num(v: Any) -> Decimal:
    return Decimal(str(v or 0)).quantize(Decimal("0.001"))


def cross_check(root: Path, rows_by_table: dict[str, int], report: dict[str, Any], stock: list[dict[str, Any]],
                offices: list[str], seed: int, confidence: float, max_defect_rate: float,
                package_files: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Check rows of the package against the handed-over reports; returns check rows (pass/fail).

    ``package_files`` are the manifest's (db, table as found, relative path); the tables are read through
    the input contract (extract/contract.py), so a branch that spells ``dtokhaimd`` or stores decimals as
    text is checked like any other.
    """
    checks: list[dict[str, Any]] = []

    def check(cid: str, table: str, key: str, field: str, expected: Any, actual: Any) -> None:
        e, a = _shown(expected), _shown(actual)
        checks.append({"check_id": cid, "table_name": table, "key": key, "field": field, "expected": e,
                       "actual": a, "status": "pass" if e == a else "fail"})

    for table, n in sorted(report["counts_by_table"].items()):
        check("handover_table_rows", table, "", "rows", n, rows_by_table.get(table))
    con = staging.scratch()
    try:
        # the package read through the input contract: declared names and types, whatever the branch's spelling
        files: dict[str, dict[str, str]] = {}
        for f in package_files:
            files.setdefault(f[0], {})[f[1]] = str((root / f[2]).resolve())
        try:
            declared_views(con, files)
        except ContractError as exc:
            raise PackageIntegrityError(f"the package cannot be read as e-Customs V4 tables: {exc}", table="manifest.json",
                                        hint="keep one spelling of each table at the branch and redo from step 1") from exc
        by_type: dict[tuple[str, str, str], int] = {}
        for db, table in (("SXXK", "DTOKHAIMD"), ("SLXNK", "DToKhaiMD")):
            cols = ("MA_HQ", "MA_LH") if db == "SXXK" else ("Ma_HQ", "Ma_LH")
            for o, lh, n in con.execute(f'SELECT trim("{cols[0]}"), trim("{cols[1]}"), count(*) FROM '  # noqa: ISC003
                                        f'"{db}.{table}" GROUP BY ALL').fetchall():
                by_type[(f"{db}.{table}", o, lh)] = n
        # the statistics report names tables in the branch's own spelling
        spelled = {f"{f[0]}.{f[1]}".casefold(): f"{f[0]}.{f[1]}" for f in package_files}
        for r in report["counts_by_office_type"]:
            k = (_declared(r["table_name"]), r["office"], r["ma_lh"])
            check("handover_office_type", r["table_name"], f"{r['office']}|{r['ma_lh']}", "rows", r["rows"],
                  by_type.pop(k, 0))
        for (t, o, lh), n in sorted(by_type.items()):  # in the package but not in the report
            check("handover_office_type", spelled.get(t.casefold(), t), f"{o}|{lh}", "rows", 0, n)

        offs = ", ".join(sql_str(o) for o in offices)
        pkg_stock = {(dv, npl): (n, _num(lu), _num(ton)) for dv, npl, n, lu, ton in con.execute(
            f'SELECT trim(MA_DV), trim(MA_NPL), count(*), sum(LUONG), sum(TON) FROM "SXXK.DNPLNHAP" '
            f"WHERE trim(MA_HQ) IN ({offs}) "
            f"AND MA_NPL IS NOT NULL GROUP BY ALL").fetchall()}
        stated = {(s["MA_DV"], s["MA_NPL"]): (s["so_dong"], _num(s["luong"]), _num(s["ton"])) for s in stock}
        for k in sorted(set(stated) | set(pkg_stock)):
            check("handover_closing_stock", "SXXK.DNPLNHAP", f"{k[0]}|{k[1]}", "rows,LUONG,TON",
                  stated.get(k), pkg_stock.get(k))

        # by sample: records of the package must be accounted for in the reports
        pop = con.execute(f'SELECT count(*) FROM "SXXK.DNPLNHAP" '
                          f"WHERE trim(MA_HQ) IN ({offs}) AND MA_NPL IS NOT NULL").fetchall()[0][0]
        n = zero_acceptance_sample_size(confidence, max_defect_rate, pop)
        picks = set(draw(pop, n, seed, "handover:DNPLNHAP"))
        rows = con.execute(f'SELECT trim(MA_DV), trim(MA_NPL), TON FROM "SXXK.DNPLNHAP" '
                           f"WHERE trim(MA_HQ) IN ({offs}) "
                           f"AND MA_NPL IS NOT NULL").fetchall()
        for i, (dv, npl, ton) in enumerate(rows):
            if i in picks:
                st = stated.get((dv, npl))
                ok = st is not None and _num(ton) <= st[2] + Decimal("0.001")
                checks.append({"check_id": "handover_sample_stock", "table_name": "SXXK.DNPLNHAP",
                               "key": f"{dv}|{npl}", "field": "TON", "expected": "listed in the closing-stock statement",
                               "actual": "listed" if ok else "missing or above the stated total",
                               "status": "pass" if ok else "fail"})
    finally:
        con.close()
    return checks


def _shown(v: Any) -> str:
    """A compared value as the reports print it: (rows, LUONG, TON) as "3; 6198.868; 2726.061", nothing as "—" —
    never a Python repr such as ``Decimal('6198.868')``."""
    if v is None:
        return "—"
    if isinstance(v, (tuple, list)):
        return "; ".join(_shown(x) for x in v)
    return str(v)
