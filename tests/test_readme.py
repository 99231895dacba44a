"""The README's step-by-step commands run top to bottom in a fresh folder (issue 11)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _step_by_step() -> list[str]:
    section = README.read_text().split("## Step by step", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)[1]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_step_by_step_commands_run_in_a_fresh_folder(tmp_path):
    commands = _step_by_step()
    assert len(commands) >= 8 and all(c.startswith("radlite ") for c in commands)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        r = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, f"{command}\n{r.stderr[-2000:]}"
        assert "Traceback" not in r.stderr, command
    assert (tmp_path / "runs" / "report" / "report.md").is_file()
    assert (tmp_path / "results" / "tiny-qwen2-Q8_0.summary.json").is_file()
