"""Vietnamese labels for what business staff read: check ids, categories, severities, statuses, steps, decisions.

English stays in logs and code; the desk and the reports print these. Every check the steps raise has an entry
(``tests/validate/test_vocabulary.py`` finds the check ids in the code and fails on one without a label), with what
the check is and why it matters, in the words of Phụ lục IV where it has them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckText:
    label: str  # short name
    what: str  # what the check found
    why: str  # why it matters for the migration


CHECKS: dict[str, CheckText] = {
    # step 1 — review (Phụ lục IV bước 1)
    "duplicate_key": CheckText(
        "Khóa bị trùng", "Nhiều dòng có cùng khóa chính trong CSDL nguồn.",
        "Hệ thống tập trung không nhận hai bản ghi cùng khóa: chỉ một dòng được chuyển, các dòng còn lại bị cách ly."),
    "null_key": CheckText(
        "Khóa bị trống", "Dòng có cột khóa để trống (NULL).",
        "Không xác định được bản ghi thuộc tờ khai/hợp đồng nào; dòng bị cách ly, không chuyển đổi."),
    "decl_without_goods": CheckText(
        "Tờ khai không có dòng hàng", "Tờ khai không có dòng hàng nào trong CSDL nguồn.",
        "Tờ khai vẫn được chuyển nhưng thiếu chi tiết hàng; cần đối chiếu hồ sơ giấy."),
    "sohang_mismatch": CheckText(
        "Số dòng hàng không khớp", "Số dòng hàng khai trên tờ khai khác số dòng hàng thực có.",
        "Báo cáo số liệu sau chuyển đổi sẽ lệch với số khai ban đầu."),
    "orphan_catalog": CheckText(
        "Danh mục mồ côi", "Dòng danh mục (NPL, SP, thiết bị, định mức) không thuộc hợp đồng/doanh nghiệp nào.",
        "Dòng không gắn được vào bản ghi cha; bị cách ly khi chuyển đổi."),
    "tcvn3_text": CheckText(
        "Văn bản mã TCVN3", "Văn bản lưu theo bảng mã TCVN3 (ABC) thay vì Unicode.",
        "Được tự động chuyển sang Unicode ở bước 5; mỗi thay đổi được ghi lại để kiểm tra."),
    "impossible_date": CheckText(
        "Ngày không hợp lệ", "Ngày đăng ký/ký trước 1990 hoặc sau thời điểm chốt dữ liệu.",
        "Ngày sai làm sai báo cáo theo kỳ và thời hạn thanh khoản."),
    "ton_gt_luong": CheckText(
        "Tồn lớn hơn lượng nhập", "Lượng tồn của nguyên phụ liệu lớn hơn lượng nhập.",
        "Số tồn chuyển sang hệ thống tập trung sẽ sai; cần hiệu chỉnh hoặc chấp nhận có lý do."),
    "negative_qty": CheckText(
        "Số lượng âm", "Số lượng hàng hoặc tồn nhỏ hơn 0.",
        "Số âm làm sai cân đối tồn và thanh khoản."),
    "long_text": CheckText(
        "Văn bản quá dài", "Văn bản dài hơn độ dài cột ở hệ thống tập trung.",
        "Bị cắt theo quy tắc đã khai báo hoặc cách ly; phải được ghi nhận."),
    "missing_table": CheckText(
        "Thiếu bảng", "CSDL nguồn thiếu bảng bắt buộc của e-Customs V4.",
        "Không có dữ liệu của bảng đó để chuyển; chấp nhận hoặc yêu cầu Chi cục làm lại từ bước 1."),
    "non_utf8_text": CheckText(
        "Văn bản không đọc được", "Văn bản không phải UTF-8 hợp lệ trong gói sao lưu.",
        "Không đảm bảo nội dung văn bản sau chuyển đổi."),
    # step 3 — handover
    "package_file": CheckText(
        "Tệp trong gói bàn giao", "Tệp của gói bàn giao khác với mã băm đã ký trong báo cáo sao lưu.",
        "Dữ liệu có thể đã bị thay đổi sau khi sao lưu; không được dùng để chuyển đổi."),
    "backup_report_signature": CheckText(
        "Chữ ký báo cáo sao lưu", "Chữ ký số trên báo cáo sao lưu không hợp lệ hoặc thiếu.",
        "Không chứng minh được nguồn gốc gói dữ liệu bàn giao."),
    "handover_table_rows": CheckText(
        "Số dòng từng bảng khi bàn giao", "Số dòng của một bảng trong gói khác với báo cáo thống kê đã ký.",
        "Gói dữ liệu không khớp báo cáo sao lưu; có dòng bị mất hoặc thừa."),
    "handover_office_type": CheckText(
        "Số tờ khai theo đơn vị × loại hình khi bàn giao", "Số tờ khai theo đơn vị và loại hình khác báo cáo thống kê.",
        "Gói dữ liệu không khớp báo cáo sao lưu."),
    "handover_closing_stock": CheckText(
        "Bảng kê chốt tồn khi bàn giao", "Số dòng, lượng nhập hoặc tồn theo doanh nghiệp × NPL khác bảng kê chốt tồn.",
        "Số tồn bàn giao không khớp bảng kê đã ký ở bước 1."),
    "handover_sample_stock": CheckText(
        "Đối chiếu mẫu tồn khi bàn giao", "Số tồn mẫu trong gói khác với báo cáo bàn giao.",
        "Gói dữ liệu không khớp báo cáo đã ký."),
    # step 4 — restore
    "restored_count": CheckText(
        "Số dòng sau khôi phục", "Số dòng khôi phục vào CSDL trung gian khác với báo cáo thống kê.",
        "Có dòng bị mất hoặc thừa khi khôi phục."),
    "schema_missing_table": CheckText(
        "Thiếu bảng bắt buộc", "Bảng bắt buộc không có trong gói dữ liệu.",
        "Chấp nhận: khôi phục bảng rỗng; hoặc làm lại từ bước 1."),
    "schema_missing_column": CheckText(
        "Thiếu cột bắt buộc", "Cột bắt buộc không có trong gói dữ liệu.",
        "Chấp nhận: khôi phục cột rỗng (NULL); hoặc làm lại từ bước 1."),
    "schema_absent_optional_table": CheckText(
        "Không có bảng tùy chọn", "Chi cục không sử dụng bảng tùy chọn này.",
        "Khôi phục bảng rỗng; không ảnh hưởng dữ liệu khác."),
    "schema_extra_column": CheckText(
        "Cột ngoài cấu trúc", "Cột không có trong cấu trúc e-Customs V4.",
        "Được giữ trong gói sao lưu, không chuyển đổi."),
    "schema_extra_table": CheckText(
        "Bảng ngoài cấu trúc", "Bảng không có trong cấu trúc e-Customs V4.",
        "Được giữ trong gói sao lưu và đếm, không chuyển đổi."),
    "schema_retyped_column": CheckText(
        "Cột lưu khác kiểu", "Cột lưu theo kiểu khác kiểu khai báo (ví dụ số dạng văn bản).",
        "Được chuyển kiểu khi khôi phục; giá trị không chuyển được bị cách ly."),
    "bad_value": CheckText(
        "Giá trị sai kiểu", "Giá trị không chuyển được sang kiểu dữ liệu của cột.",
        "Dòng bị cách ly (Q-BAD-VALUE); hiệu chỉnh tại Chi cục hoặc chấp nhận không chuyển."),
    # step 5 — convert
    "quarantine": CheckText(
        "Dòng bị cách ly", "Dòng không chuyển đổi được theo quy tắc 2014 và được cách ly kèm lý do.",
        "Dòng này không có trong hệ thống tập trung nếu không được hiệu chỉnh."),
    "unmapped_office": CheckText(
        "Mã hải quan chưa ánh xạ", "Mã đơn vị hải quan không có trong bảng ánh xạ.",
        "Bản ghi giữ mã cũ; cần bổ sung bảng ánh xạ."),
    "unmapped_unit": CheckText(
        "Đơn vị tính chưa ánh xạ", "Mã đơn vị tính không có trong bảng ánh xạ.",
        "Bản ghi giữ mã cũ; cần bổ sung bảng ánh xạ."),
    "truncated": CheckText(
        "Văn bản bị cắt", "Văn bản được cắt theo độ dài cột theo quy tắc đã khai báo.",
        "Một phần nội dung không được chuyển; cần xác nhận."),
    # step 6 — validate and reconcile
    "count_before_after": CheckText(
        "Số liệu trước - sau chuyển đổi", "Số tờ khai trước chuyển đổi khác số đã chuyển cộng số cách ly.",
        "Có tờ khai bị mất hoặc thừa khi chuyển đổi (Phụ lục IV bước 6)."),
    "stock_balance": CheckText(
        "Cân đối tồn", "Tổng tồn theo doanh nghiệp × nguyên phụ liệu trước và sau chuyển đổi khác nhau.",
        "Số tồn dùng để thanh khoản sẽ sai sau khi chuyển."),
    "snapshot_unique_key": CheckText(
        "Khóa trùng sau chuyển đổi", "Bảng đã chuyển đổi có khóa chính bị trùng.",
        "Không nạp được vào hệ thống tập trung."),
    "snapshot_reference": CheckText(
        "Tham chiếu không hợp lệ", "Bản ghi con tham chiếu tới bản ghi cha không có.",
        "Dữ liệu mồ côi trong hệ thống tập trung."),
    "sample_table": CheckText(
        "Đối chiếu mẫu ngẫu nhiên", "Mẫu ngẫu nhiên có bản ghi lệch giữa nguồn và sau chuyển đổi.",
        "Theo kế hoạch chọn mẫu, một bản ghi lệch là bảng chưa đạt."),
    "sample_record": CheckText(
        "Bản ghi mẫu không tìm thấy", "Bản ghi được chọn mẫu không tìm thấy ở nguồn.",
        "Không chứng minh được nguồn gốc bản ghi đã chuyển."),
    "sample_field": CheckText(
        "Trường mẫu lệch", "Giá trị một trường của bản ghi mẫu khác giữa nguồn và sau chuyển đổi.",
        "Quy tắc chuyển đổi hoặc dữ liệu nguồn có sai sót."),
    "unknown_role": CheckText(
        "Vai trò người dùng chưa biết", "Vai trò người dùng cũ không có trong bảng ánh xạ quyền.",
        "Người dùng đó không được cấp quyền ở bước 8 nếu không bổ sung."),
    # step 8 — load
    "central_mismatch": CheckText(
        "Lệch sau khi nạp", "Dữ liệu trong hệ thống tập trung khác bản chuyển đổi đã ký.",
        "Không được xác nhận hoàn thành."),
    "central_unique_key": CheckText(
        "Khóa trùng ở hệ thống tập trung", "Khóa chính bị trùng trong dữ liệu của Chi cục ở hệ thống tập trung.",
        "Dữ liệu nạp không nhất quán; không được xác nhận hoàn thành."),
    "central_reference": CheckText(
        "Tham chiếu ở hệ thống tập trung", "Bản ghi con trong hệ thống tập trung tham chiếu tới bản ghi cha không có.",
        "Dữ liệu mồ côi sau khi nạp; không được xác nhận hoàn thành."),
    "central_fingerprint": CheckText(
        "Dấu vân tay dữ liệu tập trung", "Mã băm dữ liệu trong hệ thống tập trung khác bản đã ký.",
        "Không được xác nhận hoàn thành."),
}

GX_EXPECTATIONS: dict[str, str] = {
    "expect_column_values_to_not_be_null": "giá trị không được trống",
    "expect_column_values_to_be_between": "giá trị trong khoảng cho phép",
    "expect_column_values_to_match_regex": "giá trị đúng định dạng",
    "expect_column_values_to_be_in_set": "giá trị thuộc danh sách cho phép",
    "expect_column_pair_values_a_to_be_greater_than_b": "cột thứ nhất không nhỏ hơn cột thứ hai",
}

CATEGORIES = {"source_data_error": "Lỗi dữ liệu nguồn", "mapping_gap": "Thiếu ánh xạ",
              "conversion_error": "Lỗi chuyển đổi", "load_error": "Lỗi nạp dữ liệu"}
SEVERITIES = {"critical": "Nghiêm trọng", "major": "Lớn", "minor": "Nhỏ"}  # the minutes' words
SEVERITY_ORDER = {"critical": 0, "major": 1, "minor": 2}
FINDING_STATUSES = {"open": "Chờ quyết định", "accepted": "Đã chấp nhận", "corrected": "Đã hiệu chỉnh",
                    "redo": "Làm lại từ bước 1", "superseded": "Đã thay thế (vòng hiệu chỉnh sau)"}
RUN_STATUSES = {"running": "Đang chạy", "waiting-decision": "Chờ quyết định", "waiting-signatures": "Chờ ký",
                "completed": "Hoàn thành", "failed": "Lỗi", "redo-from-step-1": "Làm lại từ bước 1",
                "crashed": "Bị ngắt", "closed": "Đã đóng"}
STEP_STATUSES = {"pending": "Chưa chạy", "running": "Đang chạy", "completed": "Hoàn thành", "failed": "Lỗi",
                 "waiting": "Đang chờ", "skipped": "Bỏ qua"}
CHECK_STATUSES = {"pass": "Đạt", "fail": "Không đạt"}
DECISIONS = {"accept": "Chấp nhận", "correct": "Hiệu chỉnh", "redo": "Làm lại từ bước 1"}
STEPS = {
    "pl4_01_review": "Bước 1 — Rà soát, hiệu chỉnh",
    "pl4_02_freeze_backup": "Bước 2 — Chốt, thống kê, sao lưu",
    "pl4_03_handover": "Bước 3 — Bàn giao",
    "pl4_04_restore": "Bước 4 — Khôi phục, kiểm tra",
    "pl4_05_convert": "Bước 5 — Chuyển đổi",
    "pl4_06_validate": "Bước 6 — Kiểm tra, đối chiếu",
    "pl4_07_sign_off": "Bước 7 — Lập biên bản",
    "pl4_08_load": "Bước 8 — Nạp vào hệ thống tập trung",
}
GATES = {"pl4_04_restore": "Quyết định sau bước 4 (Phụ lục IV mục 4.2)",
         "pl4_06_validate": "Quyết định sau bước 6 (Phụ lục IV mục 5.x, 6.1)"}


def check_text(check_id: str) -> CheckText:
    """The Vietnamese text of a check id; GX expectations (``gx:…``) by their expectation."""
    if check_id in CHECKS:
        return CHECKS[check_id]
    if check_id.startswith("gx:"):
        what = GX_EXPECTATIONS.get(check_id[3:], check_id[3:])
        return CheckText(f"Kiểm tra tự động: {what}", f"Great Expectations: {what}.",
                         "Dữ liệu không đạt kỳ vọng về kiểu, khoảng hoặc định dạng; cần xem xét trước khi chuyển.")
    return CheckText(check_id, check_id, "")


def step_label(step: str) -> str:
    if step.startswith("gate_after_"):
        return GATES.get(step.removeprefix("gate_after_"), step)
    return STEPS.get(step, step)
