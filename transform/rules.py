"""Named selection and quarantine rules. Every source row that is not converted is counted under one.

Codes starting with ``R-`` are selection rules of the 2014 conversion (domain doc §3): the row is
*excluded* on purpose. Codes starting with ``Q-`` are *quarantine* reasons: the row should have been
converted but its data is wrong; it is kept with its full source values for business staff to
correct (Phụ lục IV step 1) and re-run.
"""

from __future__ import annotations

from typing import Literal

FateKind = Literal["converted", "excluded", "quarantined"]

RULES: dict[str, tuple[str, str]] = {
    # code: (Vietnamese label for reports, English description for logs)
    "R-OTHER-OFFICE": ("Thuộc Chi cục khác, không chuyển đổi trong đợt này",
                       "row belongs to an office outside this branch"),
    "R-SXXK-LIQUIDATED": ("Tờ khai SXXK đã thanh khoản hết (THANH_LY = 'H')",
                          "SXXK declaration fully liquidated (THANH_LY = 'H')"),
    "R-GC-CONTRACT-LIQUIDATED": ("Tờ khai thuộc hợp đồng gia công đã thanh khoản (ThanhKhoan = 1)",
                                 "GC declaration of a liquidated contract (ThanhKhoan = 1)"),
    "R-SL-REGIME": ("Loại hình không thuộc gia công / chế xuất (chỉ chuyển _GC%, _CX% từ SLXNK)",
                    "SLXNK declaration of a regime other than GC/CX"),
    "R-DECL-NOT-SELECTED": ("Dòng thuộc tờ khai không được chuyển đổi",
                            "row of a declaration that is not converted"),
    "R-NSX-GOODS-FROM-DC": ("Tờ khai NSX lấy hàng từ DHANGMDDC, không lấy từ DHANGMDTH",
                            "NSX declarations take goods from DHANGMDDC, not DHANGMDTH"),
    "R-DC-NOT-NSX": ("Dòng điều chỉnh của tờ khai không phải NSX", "DC line of a non-NSX declaration"),
    "R-DC-SUPERSEDED": ("Lần điều chỉnh cũ (chỉ lấy LAN_DC lớn nhất)", "older adjustment round (latest LAN_DC kept)"),
    "R-DC-CT-SUPERSEDED": ("Chi tiết thuế điều chỉnh cũ (chỉ lấy LAN_DC, LAN_DC_CT lớn nhất)",
                           "older tax detail (latest LAN_DC, LAN_DC_CT kept)"),
    "R-DK-SUPERSEDED": ("Dòng đăng ký đã có dòng TH/DC thay thế", "registered line superseded by a TH/DC line"),
    "R-ALREADY-CONVERTED": ("Đã chuyển đổi ở lần chạy trước (chạy bổ sung)",
                            "converted by an earlier run of the branch (incremental run)"),
    "R-OUT-OF-SCOPE": ("Ngoài phạm vi của lần chạy này (danh mục / tờ khai)",
                       "outside this run's scope (catalogs / declarations)"),
    "R-STOCK-ZERO": ("Tồn bằng 0 (chỉ chuyển TON > 0)", "stock row with TON = 0 (only TON > 0 migrates)"),
    "Q-NULL-KEY": ("Thiếu giá trị ở cột khóa", "NULL or blank in a key column"),
    "Q-DUPLICATE-KEY": ("Trùng khóa (bản ghi sau bị cách ly)", "duplicate key (later occurrences quarantined)"),
    "Q-IMPOSSIBLE-DATE": ("Ngày không hợp lệ (trước 1990 hoặc sau thời điểm đóng băng)",
                          "impossible date (before 1990 or after the freeze)"),
    "Q-NEGATIVE-QTY": ("Số lượng âm", "negative quantity"),
    "Q-TON-GT-LUONG": ("Tồn lớn hơn lượng nhập", "stock TON greater than imported LUONG"),
    "Q-TON-GT-GOODS": ("Tồn lớn hơn tổng lượng trên các dòng hàng của tờ khai",
                       "stock TON greater than the declaration's goods quantity for the material"),
    "Q-VALUE-TOO-LONG": ("Giá trị dài hơn cột đích", "value longer than the target column"),
    "Q-GC-NO-CONTRACT": ("Không tìm thấy hợp đồng gia công", "GC row whose contract is missing"),
    "Q-NO-PARENT": ("Không có bản ghi cha đã chuyển đổi", "the row's parent record is missing or quarantined"),
    # a child (goods line, stock, tax detail, ecsToKhaiMD, self-supplied material, destruction line) of a
    # declaration that is itself quarantined, whatever the reason (checks of step 4 or 5, value too long):
    # it waits with its declaration and follows it once the declaration is corrected
    "Q-PARENT-QUARANTINED": ("Tờ khai của dòng này đang bị cách ly (dòng được cách ly theo tờ khai)",
                             "the row's declaration is quarantined; the row is quarantined with it"),
    "Q-UNKNOWN-ITEM": ("Mã hàng không có trong danh mục", "item code missing from its catalog"),
}


def label(code: str) -> str:
    return RULES[code][0]

RULES["Q-BAD-VALUE"] = ("Giá trị không đúng kiểu dữ liệu khai báo (ví dụ chữ trong cột số, ngày không tồn tại)",
                        "a value does not cast to its column's declared type (set aside at step 4)")
RULES["Q-CHILD-BAD-VALUE"] = ("Một dòng của tờ khai (dòng hàng, chi tiết thuế, thông tin bổ sung) có giá trị sai kiểu: "
                              "tờ khai được cách ly nguyên vẹn",
                              "a row of the declaration (goods line, tax detail, extension) holds a value that does not "
                              "cast: the declaration is quarantined whole")
RULES["R-TABLE-NOT-CONVERTED"] = ("Bảng không thuộc phạm vi chuyển đổi", "table outside the conversion scope")
