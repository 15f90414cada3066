"""Run the shell commands of the README and docs/ in order in a fresh clone, on synthetic data: PASS / FAIL / SKIPPED.

    python -m benchmarks.readme_commands [--head] [--only REGEX] [--list] [--keep]

The pages are read in the order of PAGES (the README first, then docs/; a page of docs/ not named there comes
last). Every line of their ```bash blocks is a command (a line of `A && B` is one command per part). Each is
classified: it runs here, or it is SKIPPED because it needs the network (PyPI, the CIFAR-10 download is
substituted instead), a W&B server, SLURM or a GPU, or it is the test suite (CI's job: `bash .ci/run`). The
runnable ones run in that order with `bash -c` in a clone of this repository in a temporary folder (the
original is only read): `git clone` of the committed history, then the working tree's files copied over (what
`git status` would commit; `--head` tests the last commit alone). `python` is this interpreter's environment
with the clone first on PYTHONPATH. A line `export NAME=VALUE` sets the environment of the commands after it.

Substitutions (each command's line says which it got):
  data       CIFAR-10 -> `synthetic/` (the README's own `write_cifar10('synthetic', 2000, 500, learnable=True)`,
             written first): `fit` without --data-dir gets `--data-dir synthetic --download false`, and
             NBM_CIFAR_SKIP_MD5=1 is set for all
  epochs     `fit` of the published recipe (no --config, no --epochs) trains `--epochs=1`, not 50
  index      `fit --index A-B` of more than 3 pairs trains A..A+2
  grid       `export --from results/` reads 11,907 synthetic complete records (grid_records of
             nbm_lightning.synthetic.records) instead of a whole regenerated benchmark
  published  nas-bench-macro_cifar10.json (downloaded from GitHub in the README) is copied from
             $NBM_REFERENCE_JSON, else ../shared/reference/ beside the repository
  mine       `mine.json` (your own export) is the original export of those synthetic records
  other      `--missing other_machine/results/` is an empty folder
  wandb      WANDB_MODE=offline for every command (no W&B server here)
Afterwards `git status` of the clone must show no new untracked file: .gitignore covers what the commands write.
Exit status 1 if any runnable command (or that check) fails; the commands take several minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = (  # in this order: a page's commands may use what an earlier page's commands wrote
    "README.md", "docs/training.md", "docs/query.md", "docs/search.md", "docs/cluster.md", "docs/reliability.md",
    "docs/wandb.md", "docs/speed.md", "docs/fidelity.md", "docs/layout.md",
)  # fmt: skip
TIMEOUT_S = 1800  # per command
MAX_PAIRS = 3  # `fit --index A-B` trains at most this many pairs here
PUBLISHED = "nas-bench-macro_cifar10.json"
SYNTHETIC = (
    "from nbm_lightning.synthetic.cifar10 import write_cifar10; write_cifar10('synthetic', 2000, 500, learnable=True)"
)
GRID = (  # 11,907 synthetic complete records (curves of every epoch, as export requires) into a folder
    "from pathlib import Path; from nbm_lightning.synthetic.records import grid_records, write_records; "
    "from nbm_lightning.arch.codes import unique_codes; "
    "write_records(Path({folder!r}), grid_records(unique_codes()))"
)
SKIPS = (  # (pattern, why) in order: the first match skips a command
    (r"^pip install", "needs the network (PyPI)"),
    (r"^python -m pytest", "the test suite: CI runs it (bash .ci/run)"),
    (r"^wandb (login|sweep)", "needs a W&B server"),
    (r"--from wandb:", "needs a W&B server (reads runs from it)"),
    (r"sweep agents (?!.*--dry-run)", "needs a W&B server and GPUs (starts agents)"),
    (r"sweep workspace (?!.*--dry-run)", "needs a W&B server (saves a workspace)"),
    (r"^(\w+=\S+ )*sbatch ", "needs SLURM"),
    (r"gpu_check\.sh|--device cuda", "needs a GPU"),
)


@dataclass
class Command:
    """One command of the README or docs/ and what happens to it here."""

    page: str  # the page it is on (README.md, docs/...)
    block: int  # its ```bash block on that page, counted from 1
    text: str  # as written
    skip: str | None = None  # why it does not run here (None: it runs)
    run: str = ""  # what runs (the text after substitutions)
    substituted: list[str] = field(default_factory=list)  # names of the substitutions applied


def bash_blocks(text: str) -> Iterator[tuple[int, str]]:
    """(block number, line) of every non-empty line inside the ```bash blocks (indented ones too)."""
    block, inside = 0, False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside = line.strip() == "```bash"
            block += inside
        elif inside and line.strip():
            yield block, line.strip()


def pages(root: Path = ROOT) -> list[Path]:
    """The README and the docs/ pages, in the order of PAGES (other docs/ pages after them, by name)."""
    named = [root / name for name in PAGES]
    return [p for p in named if p.is_file()] + sorted(set((root / "docs").glob("*.md")) - set(named))


def commands(text: str, page: str = "README.md") -> list[Command]:
    """Every command of one page (`A && B` split), classified, with its substitutions."""
    found = []
    for block, line in bash_blocks(text):
        for part in line.split(" && "):
            command = Command(page, block, part.strip())
            command.skip = next((why for pattern, why in SKIPS if re.search(pattern, command.text)), None)
            if command.skip is None:
                substitute(command)
            found.append(command)
    return found


def substitute(command: Command) -> None:
    """Apply the documented substitutions to a runnable command (module docstring)."""
    run, words = command.text, shlex.split(command.text, comments=True)
    if "nbm_lightning.fit" in run and "--help" not in words:
        run = _fit_substitutions(run, words, command.substituted)
    if "nbm_lightning.export" in run and "--from results/" in run:
        run, _ = run.replace("--from results/", "--from $NBM_README_GRID"), command.substituted.append("grid")
    if re.search(r"\bmine\.json\b", run):
        run, _ = re.sub(r"\bmine\.json\b", "$NBM_README_MINE", run), command.substituted.append("mine")
    if "other_machine/results/" in run:
        run, _ = run.replace("other_machine/results/", "$NBM_README_OTHER"), command.substituted.append("other")
    command.run = run


def _fit_substitutions(run: str, words: list[str], applied: list[str]) -> str:
    """Synthetic data, one epoch of the published recipe, at most MAX_PAIRS pairs of an index range."""
    options = {w.split("=")[0] for w in words if w.startswith("--")}
    code, comment = (run.split("#", 1) + [""])[:2]
    code = code.rstrip()
    if "--data-dir" not in options:
        code, _ = code + " --data-dir synthetic --download false", applied.append("data")
    if "--epochs" not in options and "--config" not in options:
        code, _ = code + " --epochs=1", applied.append("epochs")
    match = re.search(r"--index[ =](\d+)-(\d+)", code)
    if match and int(match[2]) - int(match[1]) + 1 > MAX_PAIRS:
        short = f"--index {match[1]}-{int(match[1]) + MAX_PAIRS - 1}"
        code, _ = code.replace(match[0], short), applied.append("index")
    return code + (f"  #{comment}" if comment else "")


def clone(folder: Path, head_only: bool) -> Path:
    """A clone of this repository in `folder`, with the working tree's files over it unless `head_only`."""
    repo = folder / "repo"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo)], check=True)
    if head_only:
        return repo
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        source, target = ROOT / name, repo / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif target.is_file():
            target.unlink()  # deleted in the working tree
    return repo


def published_source() -> Path:
    """The published file: $NBM_REFERENCE_JSON, else ../shared/reference/ beside the repository."""
    for candidate in (os.environ.get("NBM_REFERENCE_JSON"), ROOT.parent / "shared" / "reference" / PUBLISHED):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit(f"no published file: set NBM_REFERENCE_JSON (needed for the '{PUBLISHED}' substitution)")


def environment(folder: Path, repo: Path) -> dict[str, str]:
    """The commands' environment: this interpreter first on PATH, the clone on PYTHONPATH, W&B offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBM_", "WANDB_", "CUDA_VISIBLE"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(repo),
        NBM_CIFAR_SKIP_MD5="1", WANDB_MODE="offline", WANDB_SILENT="true", NBM_CACHE_DIR=str(folder / "cache"),
        NBM_README_GRID=str(folder / "grid_results"), NBM_README_MINE=str(folder / "mine.json"),
        NBM_README_OTHER=str(folder / "other_machine" / "results"),
    )  # fmt: skip
    return env


def set_up(folder: Path, repo: Path, env: dict[str, str]) -> None:
    """What the substitutions need: synthetic CIFAR-10, the published file, the synthetic grid, mine.json."""
    (folder / "other_machine" / "results").mkdir(parents=True)
    shutil.copy2(published_source(), repo / PUBLISHED)
    grid, mine = env["NBM_README_GRID"], env["NBM_README_MINE"]
    steps = [
        f"python -c {shlex.quote(SYNTHETIC)}",
        f"python -c {shlex.quote(GRID.format(folder=grid))}",
        f"python -m nbm_lightning.export --from {grid} --format original --out {mine}",
    ]
    for step in steps:
        proc = subprocess.run(["bash", "-c", step], cwd=repo, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"set-up step failed: {step}\n{proc.stderr[-2000:]}")


def untracked(repo: Path) -> set[str]:
    """Untracked files of the clone that .gitignore does not cover."""
    out = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True
    ).stdout
    return {line[3:] for line in out.splitlines() if line.startswith("?? ")}


def execute(command: Command, repo: Path, env: dict[str, str]) -> str:
    """Run one command; its result line."""
    export = re.fullmatch(r"export (\w+)=(\S+)", command.run)
    if export:
        env[export[1]] = export[2]
        return f"PASS     {command.text}  (sets {export[1]} for the commands after it)"
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            ["bash", "-c", command.run], cwd=repo, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return f"FAIL     {command.text}  (timed out after {TIMEOUT_S} s)"
    took = f"{time.perf_counter() - start:.1f} s" + (
        f"; substituted: {', '.join(command.substituted)}" * bool(command.substituted)
    )
    if proc.returncode == 0:
        return f"PASS     {command.text}  ({took})"
    lines = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
    shown = lines[-1] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return f"FAIL     {command.text}  (exit {proc.returncode}, {took}: {shown})"


def main(argv: list[str] | None = None) -> int:
    """Classify, set up, run in order, check .gitignore; 1 if anything runnable failed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme_commands", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--head", action="store_true", help="test the last commit only (no working-tree files)")
    parser.add_argument("--only", default=None, help="run only the commands matching this regex (others SKIPPED)")
    parser.add_argument("--list", action="store_true", help="print the classification; run nothing")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)
    found = [c for p in pages() for c in commands(p.read_text(), p.relative_to(ROOT).as_posix())]
    if args.list:
        for c in found:
            status = "runs" if c.skip is None else f"SKIPPED ({c.skip})"
            print(f"[{c.page} {c.block:>2}] {status}: {c.run or c.text}")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="nbm-readme-"))
    try:
        return run_all(found, folder, args)
    finally:
        print(f"kept {folder}") if args.keep else shutil.rmtree(folder, ignore_errors=True)


def run_all(found: list[Command], folder: Path, args: argparse.Namespace) -> int:
    """Set up the clone, run every runnable command in order, print one line each and the .gitignore check."""
    repo = clone(folder, args.head)
    env = environment(folder, repo)
    before = untracked(repo)
    set_up(folder, repo, env)
    failed = 0
    for command in found:
        if command.skip is None and args.only and not re.search(args.only, command.text):
            command.skip = "not selected (--only)"
        line = f"SKIPPED  {command.text}  ({command.skip})" if command.skip else execute(command, repo, env)
        failed += line.startswith("FAIL")
        print(f"[{command.page} {command.block:>2}] {line}", flush=True)
    written = sorted(untracked(repo) - before)
    print(
        f"[--] {'FAIL' if written else 'PASS'}     .gitignore covers what the commands wrote"
        + (f": not {written}" if written else "")
    )
    ran = sum(c.skip is None for c in found)
    print(f"{ran} commands run, {failed + bool(written)} failed, {len(found) - ran} skipped")
    return 1 if failed or written else 0


if __name__ == "__main__":
    sys.exit(main())
