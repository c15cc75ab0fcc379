"""Make DejaVuSans-stamp.ttf, the font of the visible signature stamps: DejaVu Sans cut to Latin + Vietnamese
+ punctuation and scaled to 1000 units per em (pyHanko writes a TrueType font's advance widths as they are into
the PDF's /W array, which counts thousandths of an em: DejaVu's 2048-unit widths would space every letter twice
as far). Shipped pre-made, so no signing process spends seconds rescaling glyphs; run this again only when the
DejaVu file changes: ``python sign_off/fonts/make_stamp_font.py``."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE, OUT = HERE / "DejaVuSans.ttf", HERE / "DejaVuSans-stamp.ttf"
RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x1EA0, 0x1EFF), (0x2000, 0x206F), (0x20AB, 0x20AB)]


def make(source: Path = SOURCE, out: Path = OUT) -> Path:
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.ttLib.scaleUpem import scale_upem
    font = TTFont(str(source))
    opts = subset.Options()
    opts.layout_features = ["*"]
    opts.name_IDs = ["*"]
    opts.notdef_outline = True
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=[u for a, b in RANGES for u in range(a, b + 1)])
    sub.subset(font)
    scale_upem(font, 1000)
    font.save(str(out))
    return out


if __name__ == "__main__":
    print(make())  # noqa: T201 - a maintainer's script
