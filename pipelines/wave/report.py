"""The wave report: per branch its state, attempts, steps done, rows loaded, time and the findings waiting for
people; per concurrency limit its size and the most slots held at once (from the wave store's slot records).
JSON for tools, XLSX in Vietnamese for people."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from load.wave_store import WaveStore, peak_holders
from pipelines.decide import current_gate
from sign_off.decisions import blocking
from validate import vocabulary as vn
from validate.report import write_json, write_xlsx

if TYPE_CHECKING:
    from pipelines.wave.plan import LoadedPlan

STATE_VI = {"completed": "Hoàn thành", "failed": "Lỗi", "crashed": "Mất máy chạy (chạy lại)", "running": "Đang chạy",
            "submitted": "Đã gửi", "scheduled": "Đã gửi", "pending": "Đang chờ máy", "waiting-decision": "Chờ quyết định",
            "waiting-signatures": "Chờ ký", "redo-from-step-1": "Làm lại từ bước 1", "cancelled": "Đã hủy",
            "not-started": "Chưa chạy (hết khung giờ)", "gave-up": "Dừng sau nhiều lần mất máy", "": "Chưa gửi",
            "closed": "Đã đóng"}


def branch_rows(lp: LoadedPlan, store: WaveStore) -> list[dict[str, Any]]:
    from pipelines.wave.flow import control_store, run_id_for
    recs = store.branches(lp.plan.wave)
    out = []
    for b in lp.branches:
        mine = sorted((r for r in recs if r["branch"] == b.code), key=lambda r: r["attempt"])
        last = mine[-1] if mine else None
        cs = control_store(b)
        rid = run_id_for(lp.plan.wave, b.code)
        run = cs.run(rid)
        steps = {s.step: s for s in cs.steps(rid)} if run else {}
        done = [s for s in steps.values() if s.step.startswith("pl4_") and s.status == "completed"]
        load = steps.get("pl4_08_load")
        rows = sum((load.detail or {}).get("inserted", {}).values()) if load and load.detail else None
        findings = cs.findings(rid) if run else []
        gate = current_gate(cs, rid) if run else None
        waiting = len(blocking(findings, gate, b.config.policy.block)) if gate else 0
        started = mine[0]["submitted_at"] if mine else None
        ended = last["ended_at"] if last else None
        out.append({"branch": b.code, "priority": b.priority, "state": last["state"] if last else "",
                    "attempts": len(mine), "run_id": rid if run else None, "steps_done": len(done),
                    "last_step": max((s.step for s in done), default=None), "rows_loaded": rows,
                    "seconds": round((ended or time.time()) - started, 1) if started else None,
                    "findings_waiting": waiting, "open_findings": sum(f["status"] == "open" for f in findings),
                    "notes": "; ".join(r["note"] for r in mine if r.get("note")),
                    "source_limits": b.source_limits, "central_limit": b.central_limit})
    return out


def limit_rows(lp: LoadedPlan, store: WaveStore) -> list[dict[str, Any]]:
    slots = store.slots(lp.plan.wave)
    peaks = peak_holders(slots)
    return [{"limit": name, "size": size, "peak": peaks.get(name, 0), "held": sum(s["limit_name"] == name
                                                                                 for s in slots),
             "expired": sum(s["limit_name"] == name and s["how"] == "holder-died" for s in slots),
             "respected": peaks.get(name, 0) <= size} for name, size in sorted(lp.limit_sizes().items())]


def write_wave_report(lp: LoadedPlan, store: WaveStore) -> dict[str, Any]:
    w = store.wave(lp.plan.wave) or {}
    branches, limits = branch_rows(lp, store), limit_rows(lp, store)
    report = {"wave": lp.plan.wave, "mode": lp.plan.mode, "state": w.get("state"),
              "started_at": w.get("started_at"), "ended_at": w.get("ended_at"),
              "wall_seconds": round((w.get("ended_at") or time.time()) - w["started_at"], 1) if w else None,
              "limits": lp.plan.limits.model_dump(), "branches": branches, "slots": limits,
              "limits_respected": all(x["respected"] for x in limits)}
    out = lp.plan.output_dir / lp.plan.wave
    report["files"] = {"json": str(out / "wave_report.json"), "xlsx": str(out / "bao_cao_dot_chuyen_doi.xlsx")}
    write_json(out / "wave_report.json", report)
    write_xlsx(out / "bao_cao_dot_chuyen_doi.xlsx", {
        "Các Chi cục": (["Chi cục", "Thứ tự", "Trạng thái", "Số lần gửi", "Mã lượt chạy", "Số bước xong",
                         "Bước cuối đã xong", "Số dòng đã nạp", "Thời gian từ khi gửi (giây)",
                         "Phát hiện chờ quyết định", "Ghi chú"],
                        [(r["branch"], r["priority"], STATE_VI.get(r["state"], r["state"]), r["attempts"], r["run_id"],
                          r["steps_done"], vn.step_label(r["last_step"]) if r["last_step"] else "", r["rows_loaded"],
                          r["seconds"], r["findings_waiting"], r["notes"]) for r in branches]),
        "Giới hạn đồng thời": (["Giới hạn", "Số chỗ", "Cao nhất đã dùng", "Số lần giữ", "Máy chạy bị mất khi giữ",
                                "Kết quả"],
                               [(x["limit"], x["size"], x["peak"], x["held"], x["expired"],
                                 "Đạt" if x["respected"] else "Vượt") for x in limits]),
    })
    return report
