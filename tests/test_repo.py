"""The README's set-up commands are the ones CI runs."""

from pathlib import Path

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
    test_command = 'pip install -e ".[dev]" && python -m pytest'
    assert test_command in readme
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_main_command_is_the_fit_job():
    assert "pip install -e . && python -m nbm_lightning.fit --arch 12012012" in _bash_blocks(
        (ROOT / "README.md").read_text()
    )
