"""A lean start: `qudao serve` builds the app without loading what only some requests need
(xlsx, pinyin dictionaries, test tools)."""

from __future__ import annotations

import subprocess
import sys

# openpyxl: only ?format=xlsx and imports; pypinyin (its phrase dictionary is ~45 MB): only
# catalogue writes and chat product search; the rest are test tools.
LAZY = ("openpyxl", "pypinyin", "schemathesis", "hypothesis", "pytest")


def test_the_app_factory_imports_no_heavy_optional_modules() -> None:
    code = (
        "import sys\n"
        "from core.config import Config\n"
        "from core.app import create_app\n"
        "import core.cli\n"
        "core.cli._load_command_modules()\n"
        "create_app(Config())\n"
        f"print(sorted(m for m in {LAZY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
