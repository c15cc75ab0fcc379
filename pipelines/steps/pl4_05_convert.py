"""Phụ lục IV bước 5 — chuyển đổi dữ liệu GC, SXXK, CX into the central model.

Thin driver: stream batches out of staging (extract.staging), apply the pure rules
(transform.convert), write the converted snapshot (load.snapshot) and the quarantine. Every source
row ends converted, excluded by a named rule, or quarantined — and the step fails if the counts do
not add up to the restored counts of step 4.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from extract import staging
from extract.legacy_schema import TABLES_BY_DB, legacy_table
from load.central_model import arrow_schema_of, text_limits
from load.snapshot import SRC_KEY, SnapshotWriter
from pipelines import progress
from pipelines.steps.base import StepContext, StepOutcome
from transform import convert as cv
from transform import registry
from transform.codes import new_office_code, office_map, reshape_office, unit_map
from transform.errors import ConservationError, TransformError
from transform.offices2025 import uncovered
from transform.plan import decl_lookup, gc_cx_norms
from transform.plan import declarations as decl_plan
from transform.plan import merged as merge_plan
from transform.plan import slxnk_lines as line_plan
from transform.plan import stock as stock_plan
from transform.plan import sx_norms as norm_plan
from transform.plan import sxxk_goods as goods_plan
from transform.plan.cx_items import cx_item_plan
from transform.plan.engine import (
    child_batches,
    converted_batches,
    converted_keys,
    pre_cut,
    quarantined_keys,
    release,
    run_plan,
)
from transform.plan.model import TablePlan
from transform.plan.sx_items import sx_item_plan
from transform.scope import source_in_scope
from transform.stock import group_by_price
from validate.findings import Finding
from validate.report import md_table, write_json

STEP = "pl4_05_convert"
REGISTRY_FILE = "id_registry_delta.parquet"
SINK_ROWS = 8_192
REGISTRY_SCHEMA = pa.schema([("kind", pa.string()), ("key", pa.string()), ("value", pa.string())])
QUARANTINE_SCHEMA = pa.schema([("source_table", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
                               ("source_key", pa.string()), ("source_values", pa.string())])


class _Sink:
    """Buffers target rows per central table and source fates; flushes Arrow batches to the snapshot."""

    def __init__(self, writer: SnapshotWriter, batch_rows: int, truncate: list[str] | None = None,
                 lookups: cv.Lookups | None = None) -> None:
        self.writer = writer
        self.lookups = lookups
        # the IDs issued, streamed to the snapshot's registry file batch by batch (never all in memory)
        self.reg_writer = pq.ParquetWriter(writer.root / REGISTRY_FILE, REGISTRY_SCHEMA, compression="zstd")
        self.reg_rows = 0
        self.truncate: dict[str, list[str]] = {}
        for item in truncate or []:
            table, _, col = item.partition(".")
            self.truncate.setdefault(table, []).append(col)
        self.truncations: list[dict[str, str]] = []
        self.batch_rows = batch_rows
        self.buf: dict[str, list[dict[str, Any]]] = {}
        self.fates: Counter[tuple[str, str, str]] = Counter()
        self.quarantine: list[dict[str, Any]] = []
        self.limits: dict[str, dict[str, int]] = {}
        self.registrations: list[dict[str, str]] = []
        self.arrow_buf: dict[str, list[pa.RecordBatch]] = {}

    def take_arrow(self, target: str, batch: pa.RecordBatch) -> None:
        """Target rows a conversion plan computed (transform/plan/): buffered and written in the same
        ``batch_rows`` chunks as rows taken one by one, so the snapshot's bytes do not depend on who converted."""
        pending = self.arrow_buf.setdefault(target, [])
        if self.buf.get(target):  # rows the Python rules gave this table before: they go first, in the same chunks
            schema = arrow_schema_of(target).append(pa.field(SRC_KEY, pa.string()))
            pending.insert(0, cv.to_batch(self.buf[target], schema))
            self.buf[target] = []
        pending.append(batch)
        total = sum(b.num_rows for b in pending)
        if total >= self.batch_rows:
            table = pa.Table.from_batches(pending)
            done = (total // self.batch_rows) * self.batch_rows
            for off in range(0, done, self.batch_rows):
                self.writer.write(target, table.slice(off, self.batch_rows).combine_chunks().to_batches()[0])
            rest = table.slice(done)
            self.arrow_buf[target] = rest.combine_chunks().to_batches() if rest.num_rows else []

    def take(self, source_table: str, row: dict[str, Any], fate: cv.Fate) -> None:
        src_key = _src_key(source_table, row)
        if fate.kind == "converted":
            for target, trow in fate.rows:
                lim = self.limits.get(target)
                if lim is None:  # (not setdefault: its argument would be computed for every row)
                    lim = self.limits[target] = text_limits(target)
                for col, before, after in cv.truncate_allowed(trow, lim, self.truncate.get(target, ())):
                    self.truncations.append({"rule": "T-TRUNCATE", "source_key": src_key, "column": f"{target}.{col}",
                                             "before": before, "after": after})
                if (why := cv.too_long(trow, lim)):
                    if self.lookups is not None:
                        cv.forget(self.lookups, fate.registrations, registry.KINDS)
                    fate = cv.Fate.quarantined("Q-VALUE-TOO-LONG", why)
                    break
        if fate.kind == "converted":
            self.registrations.extend(registry.encode(k, key, v) for k, key, v in fate.registrations)
            if len(self.registrations) >= self.batch_rows:
                self.flush_registrations()
            for target, trow in fate.rows:
                if self.arrow_buf.get(target):
                    raise AssertionError(f"{target}: rows of the Python rules after rows of a plan")
                trow[SRC_KEY] = src_key
                b = self.buf.setdefault(target, [])
                b.append(trow)
                if len(b) >= self.batch_rows:
                    self.flush(target)
        elif fate.kind == "quarantined":
            self.quarantine.append({"source_table": source_table, "reason": fate.code, "detail": fate.detail,
                                    "source_key": src_key,
                                    "source_values": json.dumps(row, ensure_ascii=False, default=str)})
        self.fates[(source_table, fate.kind, fate.code)] += 1

    def flush_registrations(self) -> None:
        if self.registrations:
            self.reg_writer.write_table(pa.Table.from_pylist(self.registrations, schema=REGISTRY_SCHEMA))
            self.reg_rows += len(self.registrations)
            self.registrations = []

    def close_registrations(self) -> int:
        self.flush_registrations()
        self.reg_writer.close()
        return self.reg_rows

    def flush(self, target: str | None = None) -> None:
        if target is None:
            for name, pending in self.arrow_buf.items():
                if pending:
                    self.writer.write(name, pa.Table.from_batches(pending).combine_chunks().to_batches()[0])
            self.arrow_buf = {}
        for name in [target] if target else list(self.buf):
            rows = self.buf.get(name) or []
            if rows:
                schema = arrow_schema_of(name).append(pa.field(SRC_KEY, pa.string()))
                self.writer.write(name, cv.to_batch(rows, schema))
                self.buf[name] = []


@functools.lru_cache(maxsize=None)
def _key_columns(source_table: str) -> tuple[tuple[str, str], ...]:
    db, name = source_table.split(".", 1)
    return tuple((k, k.upper()) for k in legacy_table(db, name).key)


def _src_key(source_table: str, row: dict[str, Any]) -> str:
    return source_table + "|" + "|".join(f"{k}={cv.t(row.get(u))}" for k, u in _key_columns(source_table))


def _rows(batches: Iterable[pa.RecordBatch], label: str) -> Iterator[dict[str, Any]]:
    for b in batches:
        progress.report(STEP, label, b.num_rows)
        yield from cv.upper_rows(b)


def _grouped(batches: Iterable[pa.RecordBatch], key: list[str], label: str) -> Iterator[list[dict[str, Any]]]:
    def counted() -> Iterator[pa.RecordBatch]:
        for b in batches:
            progress.report(STEP, label, b.num_rows)
            yield b
    yield from cv.group_by_key(counted(), [k.upper() for k in key])


def run(ctx: StepContext) -> StepOutcome:
    cfg = ctx.cfg
    # a correction round: the findings of the previous round of steps 5 and 6 are superseded by this one's
    ctx.store.supersede_findings(ctx.run_id, (STEP, "pl4_06_validate"))
    omap = office_map(cfg.office_map)
    table_2025 = cfg.offices_2025()
    if table_2025 is not None:  # refuse before converting: a branch office the 2025 table does not map
        gap = uncovered((new_office_code(o, omap) for o in cfg.offices), table_2025)
        if gap:
            raise TransformError(f"the 2025 office table does not map the branch's offices {', '.join(gap)}",
                                 table=str(cfg.office_table_2025),
                                 hint="ask HQ for the table rows of these offices, or convert with "
                                      "central_office_codes = 'vnaccs-2014'")
    cctx = cv.ConvertContext(frozenset(cfg.offices), omap, unit_map(cfg.unit_map), ctx.freeze_time(), table_2025)
    lk = cv.Lookups()
    ids, prior = _prepare(ctx, lk)
    con = staging.connect(cfg.staging_path, memory_limit=cfg.staging_memory_limit, temp_dir=cfg.staging_temp_dir)
    # the declarations converted before (the ID registry's) and by this run: a table in staging, not a dict
    decl_lookup.create(con, lk.decls, lk.prior.get("decls", set()))
    lk.decls.clear()
    writer = SnapshotWriter(ctx.snapshot_dir)
    # target rows wait in per-table buffers (up to 18 at once): small flushes keep that memory bounded
    sink = _Sink(writer, min(cfg.batch_rows, SINK_ROWS), cfg.truncate, lk)
    n = cfg.batch_rows
    in_scope = lambda db, table: source_in_scope(f"{db}.{table}", cfg.scope)  # noqa: E731

    def each(db: str, table: str, fn: Callable[[dict[str, Any]], cv.Fate]) -> None:
        if in_scope(db, table):
            for r in _rows(staging.read_table(con, db, table, n), f"{db}.{table}"):
                sink.take(f"{db}.{table}", r, fn(r))

    def grouped(db: str, table: str, key: list[str], fn: Callable[[dict[str, Any], set], cv.Fate]) -> None:
        if in_scope(db, table):
            for grp in _grouped(staging.read_ordered(con, db, table, key, n), key, f"{db}.{table}"):
                seen: set = set()
                for r in grp:
                    sink.take(f"{db}.{table}", r, fn(r, seen))

    try:
        # rows step 4 set aside because a value does not cast (Q-BAD-VALUE): counted here, and a declaration
        # among them takes its goods, stock and other children into quarantine with it
        for r in staging.bad_values(con):
            _take_bad_value(sink, lk, r)
        # catalogs first: declarations and goods look their IDs up (Phụ lục IV §I.1)
        for loai, table in ((1, "SNPL"), (2, "SSP")):  # by the declared plan, in DuckDB (transform/plan/)
            if in_scope("SXXK", table):
                take_plan(con, sink, sx_item_plan(loai, cctx.branch_offices), cctx, ids, lk, cfg.truncate)
        if in_scope("SXXK", "DDINHMUC"):  # by plan (transform/plan/)
            take_plan(con, sink, norm_plan.sx_norm_plan(cctx.branch_offices), cctx, ids, lk, cfg.truncate)
        each("SLXNK", "DHDGC", lambda r: cv.convert_contract(r, cctx, ids, lk))
        hd_key = ["So_HD", "Ma_HQHD", "DVGC", "Ngay_Ky"]
        grouped("SLXNK", "DLOAISPGC", hd_key, lambda r, s: cv.convert_gc_group(r, cctx, lk, s))
        for src in cv.GC_ITEM_SOURCES:
            each("SLXNK", src, lambda r, _s=src: cv.convert_gc_item(r, _s, cctx, ids, lk))
        if in_scope("SLXNK", "DDMuc"):  # by plan (transform/plan/)
            take_plan(con, sink, gc_cx_norms.gc_norm_plan(cctx.branch_offices), cctx, ids, lk, cfg.truncate)
        for is_in, table in ((True, "ecsCX_DM_HH_DUA_VAO_D"), (False, "ecsCX_DM_HH_DUA_RA_D")):  # by plan
            if in_scope("SLXNK", table):
                take_plan(con, sink, cx_item_plan(is_in, cctx.branch_offices), cctx, ids, lk, cfg.truncate)
        if in_scope("SLXNK", "ecsCX_DinhMuc"):  # by plan (transform/plan/)
            take_plan(con, sink, gc_cx_norms.cx_norm_plan(cctx.branch_offices), cctx, ids, lk, cfg.truncate)

        # declarations (liquidation data, Phụ lục IV §I.2), their goods, stock
        for db, table in (("SXXK", "DTOKHAIMD"), ("SLXNK", "DToKhaiMD")):  # by plan (transform/plan/)
            if in_scope(db, table):
                take_plan(con, sink, decl_plan.declaration_plan(db, cctx.branch_offices, cctx.freeze_at), cctx, ids,
                          lk, cfg.truncate)
        if in_scope("SLXNK", "ecsToKhaiMD"):  # by plan (transform/plan/)
            take_plan(con, sink, merge_plan.ecs_plan(), cctx, ids, lk, cfg.truncate)

        chosen_ct: set[tuple] = set()
        # (a cut of a stock column applies to the header and each price row apart: the Python rules do it)
        python_stock = any(t.split(".")[0] in ("DSX_NPL_NHAP", "DSX_NPL_NHAP_TL") for t in cfg.truncate)
        if in_scope("SXXK", "DHANGMDTH"):  # by plan (transform/plan/)
            take_plan(con, sink, goods_plan.sxxk_goods_plan(), cctx, ids, lk, cfg.truncate, keep=True)
            chosen_ct = sxxk_goods_lookups(con, lk, stock_lines=python_stock)
            release(con)
        if in_scope("SXXK", "DHANGMDDC_CT"):  # by plan (transform/plan/)
            take_plan(con, sink, merge_plan.dc_ct_plan(), cctx, ids, lk, cfg.truncate, chosen_ct)
        if in_scope("SLXNK", "DHangMD"):  # by plan (transform/plan/)
            take_plan(con, sink, line_plan.slxnk_line_plan(), cctx, ids, lk, cfg.truncate)
        if python_stock:
            each("SXXK", "DNPLNHAP", lambda r: cv.convert_stock(r, cctx, ids, lk))
        elif in_scope("SXXK", "DNPLNHAP"):  # by plan (transform/plan/)
            take_plan(con, sink, stock_plan.stock_plan(), cctx, ids, lk, cfg.truncate)
        # (the Python rules below look up only the declarations their rows name)
        lk.decls = decl_lookup.entries_for(con, "ecsNPLTCU")
        each("SLXNK", "ecsNPLTCU", lambda r: cv.convert_self_supplied(r, cctx, ids, lk))
        lk.decls = decl_lookup.entries_for(con, "ecsNPLTCU_CT")
        grouped("SLXNK", "ecsNPLTCU_CT", ["SoTK", "Ma_LH", "Ma_HQ", "NamDK", "NPLP_Code"],
                lambda r, s: cv.convert_self_supplied_doc(r, cctx, lk, s))
        each("SLXNK", "ecsCX_CT_TOKHAI", lambda r: cv.convert_cx_notice(r, cctx, ids, lk))
        grouped("SLXNK", "ecsCX_CT_TOKHAI_HANG", ["MA_HQTN", "NAM_TN", "SO_TN"],
                lambda r, s: cv.convert_cx_notice_line(r, cctx, lk, s))
        lk.decls = decl_lookup.entries_for(con, "ecsCX_HUY_NPLSP_D")
        grouped("SLXNK", "ecsCX_HUY_NPLSP_D", ["MA_HQTN", "NAM_TN", "SO_TN"],
                lambda r, s: cv.convert_cx_destruction(r, cctx, ids, lk, s))
        lk.decls = {}

        # tables the package holds beyond the conversion scope are counted, never silently dropped
        restored = {r["table_name"]: r["rows"] for r in ctx.store.counts(ctx.run_id, "restored")}
        accounted: Counter[str] = Counter()
        for (src, _f, _c), v in sink.fates.items():
            accounted[src] += v
        for table, rows in restored.items():
            db, name = table.split(".", 1)
            in_model = name in {t.name for t in TABLES_BY_DB.get(db, ())}
            if rows > accounted[table] and not (in_model and source_in_scope(table, cfg.scope)):
                code = "R-OUT-OF-SCOPE" if in_model else "R-TABLE-NOT-CONVERTED"
                sink.fates[(table, "excluded", code)] += rows - accounted[table]
        sink.flush()
        snap = writer.close({REGISTRY_FILE: sink.close_registrations()})
        qt = pa.Table.from_pylist(sink.quarantine, schema=QUARANTINE_SCHEMA)
        staging.write_quarantine(con, qt)
    finally:
        con.close()

    acct = [{"source_table": s, "fate": f, "code": c or "-", "rows": v} for (s, f, c), v in sorted(sink.fates.items())]
    ctx.store.set_accounting(ctx.run_id, acct)
    # conservation: every restored row has exactly one fate
    per_table: Counter[str] = Counter()
    for (s, _f, _c), v in sink.fates.items():
        per_table[s] += v
    broken = {t: (restored.get(t, 0), per_table.get(t, 0)) for t in set(restored) | set(per_table)
              if restored.get(t, 0) != per_table.get(t, 0)}
    if broken:
        raise ConservationError("row accounting does not add up: " +
                                "; ".join(f"{t}: restored {a}, accounted {b}" for t, (a, b) in sorted(broken.items())),
                                hint="this is a defect of the conversion; do not sign — report it")
    for q in _group_quarantine([r for r in sink.quarantine if r["reason"] != BAD_VALUE]):  # step 4 raised those
        ctx.store.add_finding(ctx.run_id, Finding.raised(STEP, "quarantine", q["table"], q["keys"],
                                                         f"{q['n']} rows quarantined: {q['reason']}"))
    unmapped = sorted(reshape_office(o) or o for o in cfg.offices if reshape_office(o) not in cctx.office_map)
    if unmapped:
        ctx.store.add_finding(ctx.run_id, Finding.raised(
            STEP, "unmapped_office", None, unmapped,
            f"office codes kept as reshaped (no VNACCS rename in map {cfg.office_map})"))
    if lk.unmapped_units:
        ctx.store.add_finding(ctx.run_id, Finding.raised(
            STEP, "unmapped_unit", None, sorted(lk.unmapped_units),
            f"unit codes not in unit map {cfg.unit_map}, passed through"))
    tables = snap["tables"]
    assert isinstance(tables, dict)
    ctx.store.add_counts(ctx.run_id, STEP, "converted", [{"table_name": k, "rows": v["rows"]} for k, v in tables.items()])
    if sink.truncations:
        ctx.store.add_finding(ctx.run_id, Finding.raised(
            STEP, "truncated", None, [t["source_key"] + "|" + t["column"] for t in sink.truncations],
            f"{len(sink.truncations)} values cut to the central column size under rule T-TRUNCATE "
            f"({', '.join(cfg.truncate)})"))
    write_json(ctx.reports_dir / "buoc5_truncations.json", sink.truncations)
    write_json(ctx.reports_dir / "buoc5_text_fixes.json",
               [{"table": a, "column": b, "before": c, "after": d} for a, b, c, d in lk.text_fixes])
    totals = Counter()
    for (_s, f, _c), v in sink.fates.items():
        totals[f] += v
    rows_in = sum(restored.values())
    md = (f"## Bước 5 — chuyển đổi\n\nSnapshot `{snap['snapshot_sha256'][:16]}…`: {totals['converted']} converted, "
          f"{totals['excluded']} excluded by named rules, {totals['quarantined']} quarantined "
          f"(of {rows_in} source rows).\n\n" +
          md_table(["source table", "fate", "rule / reason", "rows"], [tuple(a.values()) for a in acct], limit=200) +
          "\n\n" + md_table(["central table", "rows"], [(k, v["rows"]) for k, v in tables.items()]))
    return StepOutcome(rows_in=rows_in, rows_out=sum(v["rows"] for v in tables.values()), markdown=md, detail={
        "snapshot": str(ctx.snapshot_dir), "snapshot_sha256": snap["snapshot_sha256"], "scope": cfg.scope,
        "incremental": cfg.incremental, "prior_ids": prior, "new_ids": sink.reg_rows,
        "fates": dict(totals), "central_rows": {k: v["rows"] for k, v in tables.items()},
        "office_map": cfg.office_map, "unit_map": cfg.unit_map, "central_office_codes": cfg.central_office_codes,
        "office_table_2025_sha256": table_2025.sha256 if table_2025 else None, "text_fixes": len(lk.text_fixes),
        "truncated": len(sink.truncations)})


# per registry kind: the (pre-truncation) target columns a lookup entry holds, and how the rules shape it
LOOKUP_ENTRY: dict[str, tuple[list[str], Callable[..., Any]]] = {
    "sx_items": (["t_TEN_VAT_TU", "t_MA_DVT", "t_MA_HS"], lambda p, i, name, unit, hs: (i, name, unit or "", hs)),
    "cx_items": ([], lambda p, i: i),
    "sx_norms": ([], lambda p, i: i), "stock": ([], lambda p, i: i), "gc_norms": ([], lambda p, i: i), "cx_norms": ([], lambda p, i: i),
    "decls": (["t_HD_ID", "t_MA_DV", "t_XUAT_NPL_SP"], lambda p, i, hd, ma_dv, xnsp: (i, hd, ma_dv, xnsp, p.source_db)),
}


def plan_lookups(con: Any, plan: TablePlan, lk: cv.Lookups, chosen_ct: set[tuple[Any, ...]] = frozenset()
                 ) -> dict[str, pa.Table]:
    """The tables of what earlier tables converted that ``plan`` joins (``plan.lookups``), from the lookups."""
    out: dict[str, pa.Table] = {}
    for name in plan.lookups:
        if name == decl_plan.BLOCKED:
            rows = [(*(None if v is None else str(v) for v in k), what)
                    for (db, k), what in lk.blocked_decls.items() if db == plan.source_db]
            out[name] = pa.table({f"k{i}": [r[i] for r in rows] for i in range(4)} | {"what": [r[4] for r in rows]},
                                 schema=pa.schema([*(pa.field(f"k{i}", pa.string()) for i in range(4)),
                                                   pa.field("what", pa.string())]))
        elif name == decl_plan.CONTRACTS:
            items = list(lk.contracts.items())
            out[name] = pa.table({**{f"c{i}": [k[i] for k, _v in items] for i in range(4)},
                                  "hd_id": [v[0] for _k, v in items], "liquidated": [v[1] for _k, v in items]},
                                 schema=pa.schema([*(pa.field(f"c{i}", pa.string()) for i in range(4)),
                                                   pa.field("hd_id", pa.int64()), pa.field("liquidated", pa.int64())]))
        elif name == line_plan.DECLS:
            continue  # in staging (transform/plan/decl_lookup.py; take_plan makes it)
        elif name == line_plan.QDECLS:
            out[name] = _table([("k0", pa.string()), ("k1", pa.string()), ("k2", pa.string()), ("k3", pa.string()),
                                ("db", pa.string()), ("reason", pa.string())],
                               ([*_texts(k), db, why] for (db, k), why in lk.quarantined_decls.items()))
        elif name == line_plan.GC_ITEMS:
            out[name] = _table([("hd_id", pa.int64()), ("ma_vt", pa.string()), ("loai", pa.int64()),
                                ("vt_id", pa.int64())], ([*k, v] for k, v in lk.gc_items.items()))
        elif name == line_plan.CX_ITEMS:
            out[name] = _table([("c0", pa.string()), ("c1", pa.string()), ("c2", pa.string()), ("c3", pa.int64()),
                                ("vt_id", pa.int64())], ([*k, v] for k, v in lk.cx_items.items()))
        elif name in (merge_plan.CHOSEN_CT, merge_plan.HELD_CT):
            keys = lk.held_ct if name == merge_plan.HELD_CT else chosen_ct
            out[name] = _table([(f"k{i}", pa.string()) for i in range(7)], (_texts(k) for k in keys))
        elif name == stock_plan.GROUPS and stock_plan.has_groups(con):
            continue  # built in staging from the goods plan's lines (sxxk_goods_lookups)
        elif name == stock_plan.GROUPS:  # (a scope without goods: none)
            rows = []
            for (tk_id, code), lines in lk.stock_lines.items():
                groups = group_by_price(lines)
                total = sum(g.quantity for g in groups)  # (printed as the rules print it)
                rows += [[tk_id, code, g.price, g.quantity, g.tax_rate, total, str(total)] for g in groups]
            out[name] = _table([("tk_id", pa.int64()), ("code", pa.string()), ("price", pa.decimal128(38, 6)),
                                ("qty", pa.decimal128(38, 8)), ("rate", pa.decimal128(38, 8)),
                                ("total", pa.decimal128(38, 8)), ("total_text", pa.string())], rows)
        elif name == goods_plan.SX_ITEMS:
            out[name] = _table([("c0", pa.string()), ("c1", pa.string()), ("c2", pa.string()), ("c3", pa.int64()),
                                ("vt_id", pa.int64()), ("name", pa.string()), ("unit", pa.string()),
                                ("hs", pa.string())], ([*k, *v[:4]] for k, v in lk.sx_items.items()))
        else:
            raise KeyError(f"no lookup table {name!r} for plan {plan.source}")
    return out


def _texts(key: tuple[Any, ...]) -> list[str | None]:
    return [None if v is None else str(v) for v in key]


def _table(fields: list[tuple[str, pa.DataType]], rows: Iterable[list[Any]]) -> pa.Table:
    """A lookup table from rows (of what earlier tables converted: keys, never whole source rows)."""
    rows = list(rows)
    return pa.table({n: pa.array([r[i] for r in rows], type=t) for i, (n, t) in enumerate(fields)})


def _taken(plan: TablePlan, lk: cv.Lookups) -> tuple[list[tuple[Any, ...]], str | None]:
    """Keys of ``plan``'s registry kind converted before it: by an earlier run (prior), or — declarations — from
    the other source database (a duplicate, also in later runs: a query over the declarations' table)."""
    prior = sorted(lk.prior.get(plan.registry_kind, ()), key=str) if plan.registry_kind else []
    return prior, decl_lookup.taken_sql(plan.source_db) if plan.registry_kind == "decls" else None


def take_plan(con: Any, sink: _Sink, plan: TablePlan, cctx: cv.ConvertContext, ids: cv.IdAllocator,
              lk: cv.Lookups, truncate: list[str], chosen_ct: set[tuple[Any, ...]] = frozenset(),
              keep: bool = False) -> None:
    """Convert one source table by its declared plan (transform/plan/) and hand the result to the sink exactly
    as the Python rules would: fates, quarantine, side reports, target rows, IDs, registrations, lookups.
    ``keep``: leave the plan's rows in staging for the caller (who releases them, transform.plan.engine.release)."""
    start = ids.seq.get(plan.id_sequence, 0)
    if line_plan.DECLS in plan.lookups or plan.registry_kind == "decls":
        if not decl_lookup.exists(con):  # (a caller that made none: the declarations the lookups hold)
            decl_lookup.create(con, lk.decls, lk.prior.get("decls", set()))
    prior, taken = _taken(plan, lk)
    res = run_plan(con, plan, cctx, id_base=ids.base_id, id_start=start, prior_keys=prior, taken_sql=taken,
                   limits=text_limits(plan.target) if plan.target else {}, truncate=truncate,
                   src_key_columns={t: tuple(k for k, _u in _key_columns(t)) for t in plan.sources or [plan.source]},
                   lookups=plan_lookups(con, plan, lk, chosen_ct))
    progress.report(STEP, plan.source, res.restored)
    for (source, kind, code), n in res.fates.items():
        sink.fates[(source, kind, code)] += n
    sink.quarantine.extend(res.quarantine)
    sink.truncations.extend(res.truncations)
    lk.text_fixes.extend(res.text_fixes)
    lk.unmapped_units |= res.unmapped_units
    if plan.target:
        schema = arrow_schema_of(plan.target).append(pa.field(SRC_KEY, pa.string()))
        for batch in converted_batches(con, plan, schema, SRC_KEY, sink.batch_rows):
            sink.take_arrow(plan.target, batch)
    if plan.child_target:
        schema = arrow_schema_of(plan.child_target).append(pa.field(SRC_KEY, pa.string()))
        for batch in child_batches(con, schema, SRC_KEY, sink.batch_rows):
            sink.take_arrow(plan.child_target, batch)
    # what later rules look up, and the ID registry: the values the rules remember are those before a
    # T-TRUNCATE cut (the sink cuts the target row only)
    n_key = len(plan.key)
    columns, entry = LOOKUP_ENTRY[plan.registry_kind] if plan.registry_kind else ([], None)
    kept = registry.KINDS.get(plan.registry_kind or "")  # the kind's lookup (None: only remembered as converted)
    table = getattr(lk, kept) if kept and plan.registry_kind != "decls" else None  # (declarations: in staging)
    for row in converted_keys(con, plan, columns) if plan.registry_kind else ():
        k = tuple(row[:n_key])
        value = entry(plan, *row[n_key:])
        if table is not None:
            table[k] = value
        sink.registrations.append(registry.encode(plan.registry_kind, k, value))
        if len(sink.registrations) >= sink.batch_rows:
            sink.flush_registrations()
    if plan.registry_kind == "decls":  # a quarantined declaration takes its children with it (first reason kept)
        decl_lookup.add_converted(con, plan.source_db, *pre_cut(con, LOOKUP_ENTRY["decls"][0]))
        for row in quarantined_keys(con, plan):
            cv.note_quarantined_declaration(lk, plan.source_db, tuple(row[:n_key]), row[n_key])
    if res.ids_issued:
        ids.seq[plan.id_sequence] = start + res.ids_issued
    if not keep:
        release(con)


def sxxk_goods_lookups(con: Any, lk: cv.Lookups, stock_lines: bool = False) -> set[tuple[Any, ...]]:
    """After the SXXK goods plan: what later tables look up. The price groups of the NSX lines kept, per (TK_ID,
    material), for the stock price split — a table in staging (:data:`transform.plan.stock.GROUPS`), or with
    ``stock_lines`` the lines themselves in ``lk.stock_lines`` for the Python rule; the tax details (DHANGMDDC_CT)
    the kept DC lines took — returned — and, under a quarantined declaration, those its lines would take
    (``held_ct``)."""
    reached = "(_kind = 'converted' OR _code = 'Q-VALUE-TOO-LONG')"
    if stock_lines:
        for tk_id, code, dgia, luong, ts in con.execute(
                f"SELECT TK_ID, MA_VAT_TU, DGIA_TT, LUONG, TS_XNK FROM plan_rows WHERE {reached} AND _nsx "
                "ORDER BY _decl_rid, STT_HANG").fetchall():
            lk.stock_lines.setdefault((tk_id, code), []).append((dgia, luong, ts))
    else:
        stock_plan.build_groups(con, f"SELECT TK_ID, MA_VAT_TU, DGIA_TT, LUONG, TS_XNK FROM plan_rows "
                                     f"WHERE {reached} AND _nsx")
    chosen = {tuple(r) for r in con.execute(
        f"SELECT k0, k1, k2, k3, MA_PHU, _lan_dc, _ct FROM plan_rows WHERE {reached} AND _src = 'DC' "
        "AND _ct IS NOT NULL").fetchall()}
    lk.held_ct |= {tuple(r) for r in con.execute(
        "SELECT k0, k1, k2, k3, _mp, _lan_dc, _ct FROM plan_rows WHERE _code = 'Q-PARENT-QUARANTINED' "
        "AND _src = 'DC' AND _ct IS NOT NULL").fetchall()}
    return chosen


BAD_VALUE = "Q-BAD-VALUE"
# rows without which a declaration cannot be converted whole, and the database(s) of that declaration
_DECL_CHILDREN: dict[str, tuple[str, ...]] = {
    "SXXK.DHANGMDTH": ("SXXK",), "SXXK.DHANGMDDC": ("SXXK",), "SXXK.DHANGMDDK": ("SXXK",),
    "SXXK.DHANGMDDC_CT": ("SXXK",), "SLXNK.DHangMD": ("SLXNK",), "SLXNK.ecsNPLTCU": ("SLXNK",),
    "SLXNK.ecsNPLTCU_CT": ("SLXNK",), "SLXNK.ecsToKhaiMD": ("SXXK", "SLXNK"),
}
_DECL_HEADERS = {"SXXK.DTOKHAIMD": ("SOTK", "MA_LH", "MA_HQ", "NAMDK"), "SLXNK.DToKhaiMD": ("SoTK", "Ma_LH", "Ma_HQ", "NamDK")}


def _take_bad_value(sink: _Sink, lk: cv.Lookups, r: dict[str, Any]) -> None:
    table = str(r["source_table"])
    sink.quarantine.append({"source_table": table, "reason": BAD_VALUE, "detail": r["detail"],
                            "source_key": r["source_key"], "source_values": r["source_values"]})
    sink.fates[(table, "quarantined", BAD_VALUE)] += 1
    raw = json.loads(str(r["key_json"]))
    if table in _DECL_HEADERS:
        sotk, ma_lh, ma_hq, namdk = (raw.get(k) for k in _DECL_HEADERS[table])
        cv.note_quarantined_declaration(lk, table.split(".")[0], (_int(sotk), ma_lh, ma_hq, _int(namdk)))
    elif table in _DECL_CHILDREN:  # the declaration cannot be converted whole without this row
        for db in _DECL_CHILDREN[table]:
            cols = _DECL_HEADERS["SXXK.DTOKHAIMD" if table.startswith("SXXK.") else "SLXNK.DToKhaiMD"]
            sotk, ma_lh, ma_hq, namdk = (raw.get(k) for k in cols)
            cv.block_declaration(lk, db, (_int(sotk), ma_lh, ma_hq, _int(namdk)),
                                 f"{r['source_key']}: {r['detail']}")


def _int(v: Any) -> Any:
    """A key value as the staging table would hold it (an int column read back from its raw text)."""
    try:
        d = Decimal(str(v).strip())
    except (InvalidOperation, ValueError):
        return v
    return int(d) if d.is_finite() and d == d.to_integral_value() else v


def _prepare(ctx: StepContext, lk: cv.Lookups) -> tuple[cv.IdAllocator, dict[str, int]]:
    """Read the branch's ID registry when this run builds on earlier ones.

    - scope ``declarations``: the catalogs converted earlier (their IDs) are required;
    - incremental: every earlier key is remembered (not converted again) and sequences continue.
    """
    cfg = ctx.cfg
    if not (cfg.incremental or cfg.scope == "declarations"):
        return cv.IdAllocator(ctx.base_id), {}
    kinds = None if cfg.incremental else registry.CATALOG_KINDS
    rows = ctx.store.registry(cfg.branch_code, kinds)
    counts = registry.load_into(lk, rows)
    if cfg.scope == "declarations" and not any(counts.get(k) for k in registry.CATALOG_KINDS):
        raise TransformError(f"branch {cfg.branch_code} has no converted catalogs to link declarations to",
                             hint="run the branch with scope = \"catalogs\" (and load it) first, or use scope = \"all\"")
    start = registry.sequences(ctx.base_id, rows, registry.TABLE_OF_KIND) if cfg.incremental else {}
    return cv.IdAllocator(ctx.base_id, start), counts


def _group_quarantine(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        groups.setdefault((r["source_table"], r["reason"]), []).append(r["source_key"])
    return [{"table": t, "reason": reason, "keys": keys, "n": len(keys)} for (t, reason), keys in sorted(groups.items())]
