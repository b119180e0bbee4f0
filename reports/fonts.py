"""Finding a CJK font that both reportlab and matplotlib can use.

reportlab embeds TrueType outlines only (a .ttf, or one face of a .ttc); the CFF-based OpenType
files of Noto/Source Han CJK are refused, so they are not candidates. The Debian package
``fonts-wqy-microhei`` is the one ``make`` set-up installs. ``LANTIAN_CJK_FONT`` may name another
file (``path`` or ``path:face-index``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

FONT_PACKAGE = "fonts-wqy-microhei"

#: (path, face index in a .ttc, Debian package that ships it), in order of preference
CANDIDATES: tuple[tuple[str, int, str], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0, "fonts-wqy-microhei"),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0, "fonts-wqy-zenhei"),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0, "fonts-arphic-uming"),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0, "fonts-droid-fallback"),
    ("/usr/share/fonts/wqy-microhei/wqy-microhei.ttc", 0, "wqy-microhei-fonts (RPM)"),
)

PDF_FONT_NAME = "LantianCJK"


class FontNotFoundError(RuntimeError):
    pass


@dataclass(frozen=True)
class CjkFont:
    path: Path
    index: int
    family: str  # the family name matplotlib knows it by


def _candidates() -> list[tuple[Path, int]]:
    out = []
    override = os.environ.get("LANTIAN_CJK_FONT")
    if override:
        path, _, index = override.partition(":")
        out.append((Path(path), int(index or 0)))
    out += [(Path(path), index) for path, index, _ in CANDIDATES]
    return out


def _usable_by_reportlab(path: Path, index: int) -> bool:
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    try:
        TTFont("probe", str(path), subfontIndex=index)
    except (TTFError, OSError, ValueError):
        return False
    return True


@cache
def find_cjk_font() -> CjkFont:
    """The first installed CJK TrueType font, or an error that says which package to install."""
    from matplotlib import font_manager

    tried = []
    for path, index in _candidates():
        tried.append(str(path))
        if not path.is_file() or not _usable_by_reportlab(path, index):
            continue
        font_manager.fontManager.addfont(str(path))
        family = font_manager.FontProperties(fname=str(path)).get_name()
        return CjkFont(path, index, family)
    raise FontNotFoundError(
        "no CJK TrueType font found for the report (searched: "
        + ", ".join(tried)
        + f"). Install the Debian package {FONT_PACKAGE}: apt-get install {FONT_PACKAGE} "
        "(or set LANTIAN_CJK_FONT=/path/to/font.ttc:0 to a TrueType, not CFF, CJK font)."
    )


@cache
def register_pdf_font() -> str:
    """Register the CJK font with reportlab once; returns its reportlab name."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    font = find_cjk_font()
    pdfmetrics.registerFont(TTFont(PDF_FONT_NAME, str(font.path), subfontIndex=font.index))
    return PDF_FONT_NAME


@cache
def _cmap() -> frozenset[int]:
    from reportlab.pdfbase.ttfonts import TTFontFile

    font = find_cjk_font()
    face = TTFontFile(str(font.path), subfontIndex=font.index)
    return frozenset(face.charToGlyph)


def missing_glyphs(text: str) -> set[str]:
    """Characters of ``text`` the CJK font has no glyph for (they would print as boxes)."""
    cmap = _cmap()
    return {ch for ch in set(text) if not ch.isspace() and ord(ch) not in cmap}
