"""The README stays true where it is derived from code: its settings tables."""

from __future__ import annotations

from pathlib import Path

from clfserve.service.envsettings import markdown_table
from clfserve.service.settings import Settings, StalenessSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_settings_tables_match_the_declarations() -> None:
    """Regenerate with `markdown_tables()` from `clfserve.service.settings` when this fails."""
    text = README.read_text(encoding="utf-8")
    for cls in (Settings, StalenessSettings):
        assert markdown_table(cls) in text, f"README table of {cls.__name__} is out of date"
