from pathlib import Path

from extract import review
from extract.package import write_package
from extract.source import count_rows, open_source, reflect
from validate.crosscheck import cross_check


def test_cross_check_finds_each_altered_report_figure(tmp_path: Path, sample_branch: Path) -> None:
    engines = {db: open_source(f"sqlite:///{sample_branch / f'{db.lower()}.sqlite'}") for db in ("SLXNK", "SXXK")}
    man = write_package("C47D", engines, tmp_path / "pkg")
    offices = ["C47D", "C47D01"]
    report = {"counts_by_table": {f"{db}.{n}": count_rows(e, t) for db, e in engines.items()
                                  for n, t in reflect(e).tables.items()},
              "counts_by_office_type": [r for db, e in engines.items() for r in review.counts_by_office_type(e, db)]}
    stock = review.closing_stock(engines["SXXK"], offices)
    args = (tmp_path / "pkg", man.rows(), report, stock, offices, 865, 0.95, 0.01,
            [(f.db, f.table, f.path) for f in man.files])
    clean = cross_check(*args)
    assert clean and all(c["status"] == "pass" for c in clean)
    assert {c["check_id"] for c in clean} == {"handover_table_rows", "handover_office_type", "handover_closing_stock",
                                             "handover_sample_stock"}

    report["counts_by_table"]["SXXK.DNPLNHAP"] += 1
    report["counts_by_office_type"][0]["rows"] += 2
    stock[0]["ton"] = float(stock[0]["ton"]) + 5
    bad = [c for c in cross_check(*args) if c["status"] == "fail"]
    kinds = {(c["check_id"], c["table_name"]) for c in bad}
    assert ("handover_table_rows", "SXXK.DNPLNHAP") in kinds
    assert ("handover_office_type", report["counts_by_office_type"][0]["table_name"]) in kinds
    assert ("handover_closing_stock", "SXXK.DNPLNHAP") in kinds
    assert len([c for c in bad if c["check_id"] != "handover_sample_stock"]) == 3
