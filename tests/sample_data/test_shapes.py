"""The sample branch's two shapes (ecm, sqlserver-export) and its optional parts (cx, tcu).

The export shape is the input of step 4's boundary: the same logical rows as the ecm shape, written
the way a SQL Server export to SQLite looks. These tests compare the two shapes cell by cell and
check that leaving an optional part out changes no other row.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import unicodedata
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from typer.testing import CliRunner

from extract.legacy_schema import TABLES_BY_DB, LegacyTable
from pipelines.cli import app
from sample_data.generator import GENERATOR_VERSION, OPTIONAL_PARTS, GenParams, generate_branch
from transform.codes import looks_tcvn3

SEED = 11
RATES = {"tcvn3_text": 0.1, "negative_qty": 0.05, "duplicate_key": 0.05, "decl_without_goods": 0.03,
         "sohang_mismatch": 0.03, "impossible_date": 0.03, "ton_gt_luong": 0.05, "null_key": 0.03}
CX_TABLES = set(OPTIONAL_PARTS["cx"])
TCU_TABLES = set(OPTIONAL_PARTS["tcu"])
EXPORT = "sqlserver-export"
DATETIME_TEXT = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"


def _gen(root: Path, name: str, **kw: object) -> Path:
    d = root / name
    generate_branch(d, GenParams(**kw))  # type: ignore[arg-type]
    return d


@pytest.fixture(scope="module")
def branches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shapes")
    return {
        "ecm": _gen(root, "ecm", seed=SEED, defects=RATES),
        "ecm_without": _gen(root, "ecm_without", seed=SEED, defects=RATES, optional=()),
        "ecm_without_tcu": _gen(root, "ecm_without_tcu", seed=SEED, defects=RATES, optional=("cx",)),
        "fx": _gen(root, "fx", seed=SEED, defects=RATES, shape=EXPORT),
        "fx_without": _gen(root, "fx_without", seed=SEED, defects=RATES, shape=EXPORT, optional=()),
        "fx_bad": _gen(root, "fx_bad", seed=SEED, defects={**RATES, "bad_value": 0.05}, shape=EXPORT),
    }


def _manifest(d: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((d / "manifest.json").read_text(encoding="utf-8"))


def _con(d: Path, db: str) -> sqlite3.Connection:
    return sqlite3.connect(d / f"{db.lower()}.sqlite")


def _tables(con: sqlite3.Connection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]


def _columns(con: sqlite3.Connection, table: str) -> dict[str, str]:
    """actual column name → declared type"""
    return {r[1]: r[2] for r in con.execute(f'PRAGMA table_info("{table}")')}


def _resolve(con: sqlite3.Connection, t: LegacyTable) -> tuple[str, dict[str, str]] | None:
    """The actual table of a reference table and its reference → actual columns."""
    hits = [n for n in _tables(con) if n.lower() == t.name.lower()]
    if not hits:
        return None
    assert len(hits) == 1, hits
    actual = {c.lower(): c for c in _columns(con, hits[0])}
    return hits[0], {c: actual[c.lower()] for c, _ in t.columns}


def _rows(con: sqlite3.Connection, t: LegacyTable) -> list[tuple]:  # type: ignore[type-arg]
    """The reference columns of a table, in reference order, rows in insertion order."""
    res = _resolve(con, t)
    assert res is not None, t.qualified
    table, cols = res
    sel = ",".join(f'"{cols[c]}"' for c, _ in t.columns)
    return con.execute(f'SELECT {sel} FROM "{table}" ORDER BY rowid').fetchall()


def _is_cx_decl(t: LegacyTable, row: tuple) -> bool:  # type: ignore[type-arg]
    names = [c.lower() for c, _ in t.columns]
    lh = row[names.index("ma_lh")] if "ma_lh" in names else None
    return isinstance(lh, str) and lh[1:3] == "CX"


def _scale(legacy: str) -> int:
    if legacy == "money":
        return 4
    m = re.fullmatch(r"numeric\(\d+(?:,(\d+))?\)", legacy)
    assert m, legacy
    return int(m.group(1) or 0)


def _content_digest(d: Path) -> str:
    h = hashlib.sha256()
    for f in ("sxxk.sqlite", "slxnk.sqlite"):
        con = sqlite3.connect(d / f)
        for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
            h.update(t.encode())
            for r in con.execute(f'SELECT * FROM "{t}" ORDER BY rowid'):
                h.update(repr(r).encode())
    return h.hexdigest()


# ---- the ecm shape stays what it was --------------------------------------------------------------

def test_default_branch_content_is_pinned(tmp_path: Path) -> None:
    """GenParams() writes exactly the rows it wrote before shapes existed (the demo's snapshot hash
    depends on them). If the generator changed on purpose: bump GENERATOR_VERSION and re-pin."""
    d = _gen(tmp_path, "default")
    m = _manifest(d)
    assert (m["shape"], m["optional"]) == ("ecm", ["cx", "tcu"])
    assert GENERATOR_VERSION == 7
    assert _content_digest(d) == "39df980fd21d6c770d171874bc1faaed5b5fd1484854eb9da04699118a2132be"


def test_leaving_out_cx_and_tcu_changes_no_other_row(branches: dict[str, Path]) -> None:
    full, without = branches["ecm"], branches["ecm_without"]
    # SXXK has no optional part: the same file, byte for byte (so no draw of the stream moved)
    assert (full / "sxxk.sqlite").read_bytes() == (without / "sxxk.sqlite").read_bytes()
    assert (full / "users.json").read_bytes() == (without / "users.json").read_bytes()
    cf, cw = _con(full, "SLXNK"), _con(without, "SLXNK")
    assert set(_tables(cw)) == {t.name for t in TABLES_BY_DB["SLXNK"]}  # ecm shape: every table, empty or not
    for t in TABLES_BY_DB["SLXNK"]:
        rf, rw = _rows(cf, t), _rows(cw, t)
        if t.name in CX_TABLES | TCU_TABLES:
            assert rf and not rw, t.name
            continue
        kept = [r for r in rf if not _is_cx_decl(t, r)]
        assert rw == kept, t.name
        assert not any(_is_cx_decl(t, r) for r in rw)
    mf, mw = _manifest(full), _manifest(without)
    assert mw["optional"] == [] and mf["optional"] == ["cx", "tcu"]
    assert mw["defects"] == [d for d in mf["defects"] if str(d["key"].get("Ma_LH", ""))[1:3] != "CX"]
    assert len(mw["defects"]) < len(mf["defects"])  # some defects were on _CX% declarations
    assert all(mw["row_counts"][f"SLXNK.{t}"] == 0 for t in CX_TABLES | TCU_TABLES)


def test_leaving_out_tcu_only(branches: dict[str, Path]) -> None:
    full, without = branches["ecm"], branches["ecm_without_tcu"]
    cf, cw = _con(full, "SLXNK"), _con(without, "SLXNK")
    for t in TABLES_BY_DB["SLXNK"]:
        rf, rw = _rows(cf, t), _rows(cw, t)
        assert rw == ([] if t.name in TCU_TABLES else rf), t.name
    assert _manifest(without)["defects"] == _manifest(full)["defects"]


def test_bad_value_needs_the_export_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad_value needs shape"):
        generate_branch(tmp_path / "x", GenParams(defects={"bad_value": 0.1}))
    with pytest.raises(ValueError, match="unknown shape"):
        generate_branch(tmp_path / "x", GenParams(shape="oracle"))
    with pytest.raises(ValueError, match="unknown optional parts"):
        generate_branch(tmp_path / "x", GenParams(optional=("gc",)))


# ---- the SQL Server export shape ---------------------------------------------------------------

def test_export_names_differ_in_case_and_match_case_insensitively(branches: dict[str, Path]) -> None:
    d = branches["fx"]
    spellings: set[str] = set()
    differing = 0
    for db in ("SXXK", "SLXNK"):
        con = _con(d, db)
        ref = {t.name.lower(): t for t in TABLES_BY_DB[db]}
        actual = _tables(con)
        assert sorted(n.lower() for n in actual) == sorted(ref)  # every reference table, nothing else
        for name in actual:
            t = ref[name.lower()]
            cols = _columns(con, name)
            extra = {c for c in cols if c.lower() not in {r.lower() for r, _ in t.columns}}
            assert len(cols) - len(extra) == len(t.columns)
            for ident, r in [(name, t.name)] + [(c, next(x for x, _ in t.columns if x.lower() == c.lower()))
                                                 for c in cols if c not in extra]:
                assert ident.lower() == r.lower()
                differing += ident != r
                capitalised = "_".join(p.capitalize() for p in ident.split("_"))
                spellings.add("upper" if ident == ident.upper() else "lower" if ident == ident.lower()
                              else "capitalised" if ident == capitalised else "other")
    assert spellings == {"upper", "lower", "capitalised"}
    assert differing > 100
    sl, sx = _con(d, "SLXNK"), _con(d, "SXXK")
    # a key column of the declaration header and a goods table name, each in another case than the reference
    for con, t in ((sl, TABLES_BY_DB["SLXNK"][0]), (sx, TABLES_BY_DB["SXXK"][0])):
        assert t.name.lower() == "dtokhaimd"
        table, cols = _resolve(con, t)  # type: ignore[misc]
        assert table != t.name
        assert any(cols[k] != k for k in t.key)
    goods = [t for db in ("SXXK", "SLXNK") for t in TABLES_BY_DB[db] if t.name.upper().startswith("DHANGMD")]
    assert any(_resolve(_con(d, t.db), t)[0] != t.name for t in goods)  # type: ignore[index]


def test_export_declared_types(branches: dict[str, Path]) -> None:
    want = {"numeric": {"TEXT", "VARCHAR(40)"}, "money": {"TEXT", "VARCHAR(40)"}, "float": {"FLOAT"},
            "datetime": {"DATETIME"}, "int": {"INTEGER", "INT"}, "smallint": {"INTEGER", "SMALLINT"}}
    for db in ("SXXK", "SLXNK"):
        con = _con(branches["fx"], db)
        for t in TABLES_BY_DB[db]:
            table, cols = _resolve(con, t)  # type: ignore[misc]
            declared = _columns(con, table)
            for c, legacy in t.columns:
                base = legacy.split("(")[0]
                if base in want:
                    assert declared[cols[c]].upper() in want[base], (t.qualified, c, declared[cols[c]])


def test_export_holds_the_same_values_as_the_ecm_shape(branches: dict[str, Path]) -> None:
    """Cell by cell: numbers as decimal text at the declared scale, datetimes as .fff text, char padded,
    every other row's nvarchar text in NFD (TCVN3 byte strings untouched) — and all of it the same value."""
    seen_nfd = seen_neg = seen_tcvn3 = 0
    for db in ("SXXK", "SLXNK"):
        ce, cf = _con(branches["ecm"], db), _con(branches["fx"], db)
        for t in TABLES_BY_DB[db]:
            re_, rf = _rows(ce, t), _rows(cf, t)
            assert len(re_) == len(rf) > 0, t.qualified
            for i, (a, b) in enumerate(zip(re_, rf)):
                for (c, legacy), e, f in zip(t.columns, a, b):
                    where = (t.qualified, i, c, e, f)
                    base = legacy.split("(")[0]
                    if e is None:
                        assert f is None, where
                    elif base in ("numeric", "money"):
                        s = _scale(legacy)
                        form = r"-?\d+\.\d{%d}" % s if s else r"-?\d+"
                        assert isinstance(f, str) and re.fullmatch(form, f), where
                        assert Decimal(f) == (Decimal(e) if isinstance(e, int) else Decimal(repr(e))), where
                        seen_neg += f.startswith("-")
                    elif base == "datetime":
                        assert isinstance(f, str) and re.fullmatch(DATETIME_TEXT, f), where
                        assert datetime.strptime(f, "%Y-%m-%d %H:%M:%S.%f") == \
                            datetime.strptime(e, "%Y-%m-%d %H:%M:%S.%f"), where
                    elif base == "float":
                        assert isinstance(f, float) and f == e, where
                    elif base in ("int", "smallint"):
                        assert isinstance(f, int) and f == e, where
                    elif base == "char":
                        n = int(legacy[5:-1])
                        assert f == e.ljust(n) and len(f) >= n, where
                    elif base == "nvarchar":
                        if looks_tcvn3(e):
                            assert f == e, where  # a TCVN3 byte string is never normalised
                            seen_tcvn3 += 1
                            continue
                        assert unicodedata.normalize("NFC", f) == e, where
                        assert f == (unicodedata.normalize("NFD", e) if i % 2 == 0 else e), where
                        seen_nfd += f != e
                    else:
                        assert f == e, where
    assert seen_nfd > 100 and seen_neg > 0 and seen_tcvn3 > 0


def test_export_tcvn3_text_is_kept_as_it_is(branches: dict[str, Path]) -> None:
    m = _manifest(branches["fx"])
    tc = [d for d in m["defects"] if d["defect"] == "tcvn3_text" and d["table"] == "SXXK.DHANGMDDK"]
    con = _con(branches["fx"], "SXXK")
    t = next(t for t in TABLES_BY_DB["SXXK"] if t.name == "DHANGMDDK")
    names = [r[t.columns.index(("TEN_HANG", "nvarchar(255)"))] for r in _rows(con, t)]
    assert sum(looks_tcvn3(n) for n in names) == len(tc) > 0


def test_export_extra_columns(branches: dict[str, Path]) -> None:
    m = _manifest(branches["fx"])
    assert m["shape"] == EXPORT and m["optional"] == ["cx", "tcu"]
    assert m["extra_columns"] == {"SLXNK.DToKhaiMD": ["rowguid"], "SXXK.DTOKHAIMD": ["GHI_CHU_NOI_BO"]}
    found = {}
    for db in ("SXXK", "SLXNK"):
        con = _con(branches["fx"], db)
        for t in TABLES_BY_DB[db]:
            table, cols = _resolve(con, t)  # type: ignore[misc]
            extra = [c for c in _columns(con, table) if c not in cols.values()]
            if extra:
                found[t.qualified] = extra
    assert found == m["extra_columns"]
    sl = _con(branches["fx"], "SLXNK")
    guids = [r[0] for r in sl.execute('SELECT rowguid FROM "DTOKHAIMD"')]
    assert all(re.fullmatch(r"[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}", g) for g in guids)
    assert len(set(guids)) == len(guids)
    notes = {r[0] for r in _con(branches["fx"], "SXXK").execute('SELECT GHI_CHU_NOI_BO FROM "dtokhaimd"')}
    assert None in notes and len(notes) > 1


def test_export_without_optional_parts_has_no_such_tables(branches: dict[str, Path]) -> None:
    full, without = branches["fx"], branches["fx_without"]
    assert (full / "sxxk.sqlite").read_bytes() == (without / "sxxk.sqlite").read_bytes()
    cf, cw = _con(full, "SLXNK"), _con(without, "SLXNK")
    present = {n.lower() for n in _tables(cw)}
    assert present == {t.name.lower() for t in TABLES_BY_DB["SLXNK"] if t.name not in CX_TABLES | TCU_TABLES}
    for t in TABLES_BY_DB["SLXNK"]:
        if t.name in CX_TABLES | TCU_TABLES:
            continue
        assert _rows(cw, t) == [r for r in _rows(cf, t) if not _is_cx_decl(t, r)], t.name
    m = _manifest(without)
    assert m["optional"] == []
    kept = [t for db in ("SXXK", "SLXNK") for t in TABLES_BY_DB[db] if t.name not in CX_TABLES | TCU_TABLES]
    assert set(m["row_counts"]) == {t.qualified for t in kept}


def _trimmed(v: object, legacy: str) -> object:
    if isinstance(v, str):
        return v[:10] if legacy == "datetime" else v.rstrip()
    return v


def _cast_fails(legacy: str, raw: str) -> bool:
    if legacy == "datetime":
        for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
            try:
                datetime.strptime(raw, fmt)
                return False
            except ValueError:
                pass
        return True
    try:
        Decimal(raw)
        return False
    except InvalidOperation:
        return True


def test_bad_values_are_in_the_manifest_and_the_data_and_nowhere_else(branches: dict[str, Path]) -> None:
    bad, clean = branches["fx_bad"], branches["fx"]
    m = _manifest(bad)
    entries = [d for d in m["defects"] if d["defect"] == "bad_value"]
    tables = {d["table"] for d in entries}
    assert {"SXXK.DNPLNHAP"} <= tables
    assert tables & {"SXXK.DTOKHAIMD", "SLXNK.DToKhaiMD"}
    assert tables & {"SXXK.DHANGMDTH", "SXXK.DHANGMDDK", "SLXNK.DHangMD"}
    # every other defect is the same as without bad_value (its own random stream)
    assert [d for d in m["defects"] if d["defect"] != "bad_value"] == _manifest(clean)["defects"]
    by_table: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for d in entries:
        by_table.setdefault(d["table"], []).append(d)
    for db in ("SXXK", "SLXNK"):
        cb, cc = _con(bad, db), _con(clean, db)
        for t in TABLES_BY_DB[db]:
            types = t.column_types()
            names = [c for c, _ in t.columns]
            mine = by_table.get(t.qualified, [])
            matched = [0] * len(mine)
            for rb, rc in zip(_rows(cb, t), _rows(cc, t), strict=True):
                for c, vb, vc in zip(names, rb, rc):
                    if vb == vc:
                        continue
                    # a differing cell is a recorded bad value: its row's reference key, its column, its text
                    key = {k: _trimmed(rb[names.index(k)], types[k]) for k in t.key}
                    hits = [i for i, d in enumerate(mine)
                            if d["key"] == key and d["column"] == c and d["value"] == vb]
                    assert hits, (t.qualified, key, c, vb)
                    assert _cast_fails(types[c], vb), (c, vb)
                    for i in hits:
                        matched[i] += 1
            assert all(matched), [d for d, k in zip(mine, matched) if not k]
    for d in entries:
        assert set(d) >= {"defect", "table", "key", "detail", "column", "value"}
        assert d["value"] in ("N/A", "12,5", "1.2.3", "2013-02-31 00:00:00.000", "31/12/2013")


def test_export_same_seed_same_bytes(tmp_path: Path) -> None:
    kw = {"shape": EXPORT, "defects": {"bad_value": 0.05, "tcvn3_text": 0.1}, "optional": ("tcu",)}
    a, b = _gen(tmp_path, "a", seed=3, **kw), _gen(tmp_path, "b", seed=3, **kw)
    c = _gen(tmp_path, "c", seed=4, **kw)
    for f in ("slxnk.sqlite", "sxxk.sqlite", "manifest.json", "users.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "sxxk.sqlite").read_bytes() != (c / "sxxk.sqlite").read_bytes()
    con = _con(a, "SLXNK")
    assert not {n.lower() for n in _tables(con)} & {t.lower() for t in CX_TABLES}
    assert {n.lower() for n in _tables(con)} >= {t.lower() for t in TCU_TABLES}


def test_cli_shape_and_without(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["sample", "generate", "--out", str(tmp_path / "b"), "--shape", EXPORT,
                            "--without", "cx,tcu", "--defects", "bad_value=0.05"])
    assert r.exit_code == 0, r.output
    m = _manifest(tmp_path / "b")
    assert (m["shape"], m["optional"]) == (EXPORT, [])
    assert any(d["defect"] == "bad_value" for d in m["defects"])
    r = runner.invoke(app, ["sample", "generate", "--out", str(tmp_path / "c"), "--without", "cx"])
    assert r.exit_code == 0, r.output
    assert _manifest(tmp_path / "c")["optional"] == ["tcu"]
    for bad in (["--shape", "oracle"], ["--without", "gc"], ["--defects", "bad_value=0.1"]):
        r = runner.invoke(app, ["sample", "generate", "--out", str(tmp_path / "d"), *bad])
        assert r.exit_code == 2, (bad, r.output)
