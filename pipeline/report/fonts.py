"""The Japanese font of the charts: from a Debian package, found by path, never guessed.

Without it matplotlib draws Japanese labels as empty boxes ("tofu"), so a missing font is an error,
not a fallback. scripts/fonts.sh installs it (make setup; the Dockerfile does the same).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

FONT_PACKAGE = "fonts-ipaexfont-gothic"
CANDIDATES = (
    "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)


class FontMissing(RuntimeError):
    """No Japanese font on this machine."""


@lru_cache(maxsize=1)
def japanese_font() -> Path:
    for candidate in CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path
    raise FontMissing(
        f"no Japanese font for the report charts (looked for {', '.join(CANDIDATES)}); "
        f"install the Debian package {FONT_PACKAGE} (scripts/fonts.sh install)")


def has_glyphs(path: Path, text: str) -> list[str]:
    """The characters of `text` (other than spaces) that the font has no glyph for."""
    from fontTools.ttLib import TTCollection, TTFont

    font = TTCollection(str(path)).fonts[0] if path.suffix == ".ttc" else TTFont(str(path), lazy=True)
    cmap = font.getBestCmap()
    return sorted({c for c in text if not c.isspace() and ord(c) not in cmap})
