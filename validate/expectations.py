"""Great Expectations (GX Core 1.x) suites on the legacy tables (step 4, staging) and on the converted
tables (step 6, snapshot). Tables are validated batch by batch (Arrow → pandas, never a whole table),
and the per-batch results are added up into one result per expectation, with the failing rows' keys.
The results are rendered into a self-contained HTML page (our offline replacement for Data Docs).
"""

from __future__ import annotations

import html
import json
import logging
import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
Spec = tuple[str, dict[str, Any]]  # (GX expectation class name, its arguments)


@dataclass
class ExpectationResult:
    table: str
    expectation: str
    column: str
    success: bool = True
    element_count: int = 0
    unexpected_count: int = 0
    unexpected_keys: list[Any] = field(default_factory=list)
    error: str = ""


def _nfc_flag(s: Any) -> bool:
    """True for text already in NFC, and for missing values (pandas gives None, NaN or NA for them)."""
    if isinstance(s, str):
        return unicodedata.normalize("NFC", s) == s
    return s is None or bool(pd.isna(s))


def legacy_suites(freeze: datetime) -> dict[str, list[Spec]]:
    """Expectations on the restored legacy tables (keys are added for every table by the caller)."""
    lo, hi = datetime(1990, 1, 1), freeze
    lh = r"^[NX][A-Z]{2}[0-9]{2}\s*$"
    return {
        "SXXK.DTOKHAIMD": [("ExpectColumnValuesToMatchRegex", {"column": "MA_LH", "regex": lh}),
                           ("ExpectColumnValuesToBeBetween", {"column": "NGAY_DK", "min_value": lo, "max_value": hi})],
        "SXXK.DNPLNHAP": [("ExpectColumnValuesToBeBetween", {"column": "LUONG", "min_value": 0}),
                          ("ExpectColumnValuesToBeBetween", {"column": "TON", "min_value": 0}),
                          ("ExpectColumnPairValuesAToBeGreaterThanB",
                           {"column_A": "LUONG", "column_B": "TON", "or_equal": True})],
        **{f"SXXK.{t}": [("ExpectColumnValuesToBeBetween", {"column": "LUONG", "min_value": 0})]
           for t in ("DHANGMDDK", "DHANGMDTH", "DHANGMDDC")},
        "SLXNK.DToKhaiMD": [("ExpectColumnValuesToMatchRegex", {"column": "Ma_LH", "regex": lh}),
                            ("ExpectColumnValuesToBeBetween", {"column": "Ngay_DK", "min_value": lo, "max_value": hi})],
        "SLXNK.DHDGC": [("ExpectColumnValuesToBeInSet", {"column": "ThanhKhoan", "value_set": [0, 1]}),
                        ("ExpectColumnValuesToBeBetween", {"column": "Ngay_Ky", "min_value": lo, "max_value": hi})],
        "SLXNK.DNPLHD": [("ExpectColumnValuesToBeBetween", {"column": "SL_DK", "min_value": 0})],
        "SLXNK.DSPGC": [("ExpectColumnValuesToBeBetween", {"column": "SL_DK", "min_value": 0})],
    }


TEXT_NFC: dict[str, list[str]] = {
    "DTO_KHAI_MD": ["DV_DT"], "DHANG_MD": ["TEN_HANG"], "DSX_SP_NPL": ["TEN_VAT_TU"], "DGC_SP_NPL_TB_HM": ["TEN"],
    "DGC_HD": ["SO_HD", "DON_VI_DOI_TAC"], "DCX_DM_HH_DUA_VAO_RA": ["TEN_HANG"], "DSX_DINH_MUC": ["TEN_SP", "TEN_NPL"],
}


def converted_suites(offices: list[str]) -> dict[str, list[Spec]]:
    """Expectations on the converted tables (keys not null are added for every table by the caller)."""
    office_set = {"value_set": offices}
    s: dict[str, list[Spec]] = {
        "DTO_KHAI_MD": [("ExpectColumnValuesToBeInSet", {"column": "MA_HQ", **office_set}),
                        ("ExpectColumnValuesToBeInSet", {"column": "PLUONG", "value_set": [0, 1, 2, 3]}),
                        ("ExpectColumnValuesToBeInSet", {"column": "XUAT_NPL_SP", "value_set": ["N", "S"]})],
        "DHANG_MD": [("ExpectColumnValuesToBeBetween", {"column": "LUONG", "min_value": 0}),
                     ("ExpectColumnValuesToBeBetween", {"column": "STT_HANG", "min_value": 1})],
        "DSX_NPL_NHAP": [("ExpectColumnPairValuesAToBeGreaterThanB",
                          {"column_A": "LUONG", "column_B": "TON", "or_equal": True}),
                         ("ExpectColumnValuesToBeBetween", {"column": "TON", "min_value": 0})],
        "DSX_NPL_NHAP_TL": [("ExpectColumnPairValuesAToBeGreaterThanB",
                             {"column_A": "TON_DAU", "column_B": "TON", "or_equal": True}),
                            ("ExpectColumnValuesToBeBetween", {"column": "LUONG", "min_value": 0})],
        "DSX_SP_NPL": [("ExpectColumnValuesToBeInSet", {"column": "MA_HQ", **office_set}),
                       ("ExpectColumnValuesToBeInSet", {"column": "LOAI", "value_set": [1, 2]})],
        "DGC_SP_NPL_TB_HM": [("ExpectColumnValuesToBeInSet", {"column": "LOAI", "value_set": [1, 2, 3, 4]})],
    }
    for table, cols in TEXT_NFC.items():
        s.setdefault(table, []).extend(("ExpectColumnValuesToBeInSet", {"column": f"__nfc_{c}", "value_set": [True]})
                                       for c in cols)
    return s


class SuiteRunner:
    """One ephemeral GX context, reused for every table of a step."""

    def __init__(self) -> None:
        import great_expectations as gx
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        self.gx = gx
        self.ctx = gx.get_context(mode="ephemeral")
        try:
            self.ctx.variables.progress_bars = {"globally": False, "metric_calculations": False}  # type: ignore[assignment]
        except Exception:  # noqa: BLE001 - cosmetic only
            pass
        self.ds = self.ctx.data_sources.add_pandas("ecm")
        self.n = 0

    @staticmethod
    def columns(specs: list[Spec], key: list[str], index: list[str] | None = None,
                available: Iterable[str] | None = None) -> list[str]:
        """The columns a suite reads (keys, the index naming failing rows, the expectations' own) that the
        table has (``available``): read only these — a goods-line batch is 17 columns, its suite looks at 7
        (decimals to pandas are slow). A column the suite names but the table lacks stays out of the read:
        GX reports it missing."""
        cols = [*key, *(index or [])]
        for _name, kw in specs:
            for arg in ("column", "column_A", "column_B"):
                c = kw.get(arg)
                if isinstance(c, str):
                    cols.append(c[6:] if c.startswith("__nfc_") else c)
        have = None if available is None else set(available)
        return [c for c in dict.fromkeys(cols) if have is None or c in have]

    def run(self, table: str, batches: Iterable[pa.RecordBatch], specs: list[Spec], key: list[str],
            index: list[str] | None = None, keep_keys: int = 200) -> list[ExpectationResult]:
        """Validate ``table`` batch by batch: ``key`` columns must not be null; ``index`` names failing rows."""
        self.n += 1
        suite = self.gx.ExpectationSuite(name=f"{table}-{self.n}")
        for name, kw in [*[("ExpectColumnValuesToNotBeNull", {"column": k}) for k in key], *specs]:
            suite.add_expectation(getattr(self.gx.expectations, name)(**kw))
        asset = self.ds.add_dataframe_asset(name=f"a{self.n}")
        bd = asset.add_batch_definition_whole_dataframe(f"b{self.n}")
        results: dict[int, ExpectationResult] = {}
        nfc_cols = [kw["column"][6:] for name, kw in specs if kw.get("column", "").startswith("__nfc_")]
        wanted = self.columns(specs, key, index)
        for batch in batches:
            df = batch.select([c for c in wanted if c in batch.schema.names]).to_pandas()
            for c in nfc_cols:
                df[f"__nfc_{c}"] = [_nfc_flag(v) for v in df[c]] if c in df else True
            r = bd.get_batch(batch_parameters={"dataframe": df}).validate(
                suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": index or key})
            for i, er in enumerate(r.results):
                cfg = er.expectation_config
                col = cfg.kwargs.get("column") or f"{cfg.kwargs.get('column_A')}≥{cfg.kwargs.get('column_B')}"
                agg = results.setdefault(i, ExpectationResult(table, cfg.type, col))
                agg.element_count += int(er.result.get("element_count") or len(df))
                if not er.success:
                    agg.success = False
                    agg.unexpected_count += int(er.result.get("unexpected_count") or 0)
                    idx = er.result.get("unexpected_index_list") or []
                    agg.unexpected_keys.extend(idx[: max(0, keep_keys - len(agg.unexpected_keys))])
                    if er.exception_info and er.exception_info.get("raised_exception"):
                        agg.error = str(er.exception_info.get("exception_message"))
        return list(results.values())


def render_html(title: str, results: list[ExpectationResult], path: Path) -> Path:
    rows = "".join(
        f"<tr class='{'ok' if r.success else 'bad'}'><td>{html.escape(r.table)}</td><td>{html.escape(r.expectation)}"
        f"</td><td>{html.escape(r.column)}</td><td>{'đạt' if r.success else 'KHÔNG ĐẠT'}</td><td>{r.element_count}</td>"
        f"<td>{r.unexpected_count}</td><td>{html.escape(_keys_text(r.unexpected_keys[:5]))}{html.escape(r.error)}</td></tr>"
        for r in results)
    page = (f"<!DOCTYPE html><html lang='vi'><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px}table{border-collapse:collapse;font-size:12px}"
            "td,th{border:1px solid #bbb;padding:3px 6px}th{background:#eef}.bad{background:#fdd}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Great Expectations {self_version()} — kết quả kiểm tra, xem được khi "
            f"không có mạng.</p><table><tr><th>Bảng</th><th>Kỳ vọng</th><th>Cột</th><th>Kết quả</th><th>Số dòng</th>"
            f"<th>Không đạt</th><th>Khóa (mẫu)</th></tr>{rows}</table></body></html>")
    path.write_text(page, encoding="utf-8")
    return path


def _keys_text(keys: list[Any]) -> str:
    """Failing rows' keys as people read them (JSON, decimals as digits, missing values as null), not Python reprs
    such as ``Decimal('1.5')``."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        return v
    return json.dumps([{k: clean(v) for k, v in x.items()} if isinstance(x, dict) else x for x in keys],
                      ensure_ascii=False, default=str)


def self_version() -> str:
    import great_expectations as gx
    return str(gx.__version__)
