"""Regenerate the README's command map and exit-code table from the code: python scripts/readme.py [--check]."""

import sys
from pathlib import Path

from xzctl.cli._readme import regenerate

README = Path(__file__).resolve().parent.parent / "README.md"

if __name__ == "__main__":
    current = README.read_text(encoding="utf-8")
    fresh = regenerate(current)
    if "--check" in sys.argv[1:]:
        sys.exit(0 if fresh == current else "README.md is out of date: run python scripts/readme.py")
    README.write_text(fresh, encoding="utf-8")
