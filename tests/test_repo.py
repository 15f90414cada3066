"""The README's set-up commands are the ones CI runs, and the layout table (docs/layout.md) lists every file."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    blocks, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash"
            continue
        if inside:
            blocks.append(line.strip())
    return blocks


def test_ci_runs_the_readme_test_command():
    readme = _bash_blocks((ROOT / "README.md").read_text())
    test_command = 'pip install -e ".[dev]" && ruff check . && ruff format --check . && python -m pytest'
    assert test_command in readme
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_main_command_is_the_fit_job():
    assert "pip install -e . && python -m nbm_lightning.fit --arch 12012012" in _bash_blocks(
        (ROOT / "README.md").read_text()
    )


def test_layout_table_lists_every_file():
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, text=True)  # fmt: skip
    if files.returncode != 0:
        pytest.skip("not a git checkout (an unpacked archive): there is no list of the project's files")
    layout = (ROOT / "docs" / "layout.md").read_text()
    listed = set(re.findall(r"`([^`\s]+)`", layout[layout.index("| path | what |") :]))
    missing = [f for f in files.stdout.split() if f not in listed]
    assert not missing, f"files missing from the layout table (docs/layout.md): {missing}"
