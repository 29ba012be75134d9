"""The README's Python quickstart runs as written (against the emulator, configured by env)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from tests.integration.helpers import emulator_env
from tests.processes import run

README = Path(__file__).parents[2] / "README.md"


def test_python_quickstart_runs(emu: Any, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has a Python example"
    script = tmp_path / "quickstart.py"
    script.write_text(blocks[0])
    out = run(
        [sys.executable, str(script)],
        env=emulator_env(emu.base_url, tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    path, seed, cost = out.stdout.split()
    assert Path(path).is_file()
    assert int(seed) >= 0
    assert float(cost) > 0
