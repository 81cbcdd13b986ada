"""Where the HTML templates and the stylesheet live, installed or in a checkout."""

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def templates_dir() -> Path:
    """The wheel ships `templates/` inside the package; a checkout keeps it at the top."""
    for candidate in (_PACKAGE_DIR / "templates", _PACKAGE_DIR.parent / "templates"):
        if (candidate / "base.html").is_file():
            return candidate
    raise FileNotFoundError("templates/ not found beside the gateway package")


@cache
def stylesheet() -> str:
    """The one small stylesheet every page inlines (no external assets)."""
    return (templates_dir() / "style.css").read_text(encoding="utf-8")
