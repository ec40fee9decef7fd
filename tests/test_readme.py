"""Everything README.md shows runs as pasted: each ```python block in a fresh interpreter, each command
line of the ```bash blocks in a shell, both in a temp folder holding the files the examples name.

Only the two commands that install a venv or start a server are skipped (SKIPPED, by exact text).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SAMPLES = ROOT / "assets" / "samples"
SKIPPED = {"bash scripts/app.sh", "bash scripts/test.sh"}  # install a venv / apt packages, start a server


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def command_lines() -> list[str]:
    lines = []
    for block in blocks("bash"):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()  # a trailing "# comment" explains, it is not run
            if command and not command.startswith("#") and command not in SKIPPED:
                lines.append(command)
    return lines


def _env(bin_dir: Path) -> dict[str, str]:
    """``python`` is this venv's interpreter; the repository is importable from the temp folder; CPU only."""
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
            "CAMSCOPE_DEVICE": "cpu", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder with what the examples name: cat.jpg, photos.zip (ImageFolder), folder/ and boxes.json."""
    work = tmp_path_factory.mktemp("readme")
    shutil.copyfile(SAMPLES / "cat.jpg", work / "cat.jpg")
    with zipfile.ZipFile(work / "photos.zip", "w") as archive:
        archive.write(SAMPLES / "cat.jpg", "tabby/cat.jpg")
        archive.write(SAMPLES / "coffee.jpg", "espresso/coffee.jpg")
    (work / "folder").mkdir()
    shutil.copyfile(SAMPLES / "cat.jpg", work / "folder" / "cat.jpg")
    (work / "boxes.json").write_text(json.dumps([{"file": "cat.jpg", "box": [150, 40, 330, 220], "class": 285}]))
    bin_dir = work / "_bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python"  # a script, not a symlink: a venv is recognised by its interpreter's path
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return work, _env(bin_dir)


def test_readme_has_examples():
    assert len(blocks("python")) >= 1
    assert any(c.startswith("python -m explainers explain") for c in command_lines())
    assert not [c for c in command_lines() if "|" in c.split("#")[0]], "one command per line, no pipes"


@pytest.mark.parametrize("code", blocks("python"), ids=lambda c: c.splitlines()[0][:40])
def test_python_block_runs_in_a_fresh_interpreter(code, workdir):
    work, env = workdir
    done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("command", command_lines())
def test_command_line_runs(command, workdir):
    work, env = workdir
    done = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"


def test_skipped_commands_are_still_in_the_readme():
    """The skip list names real lines (a renamed script would otherwise silently run nothing)."""
    shown = {re.sub(r"\s+#.*$", "", line).strip() for b in blocks("bash") for line in b.splitlines()}
    assert SKIPPED <= shown


@pytest.mark.parametrize("first", ["", "import explainers.explain", "import explainers.pipeline",
                                   "from explainers.explain import explain as _e",
                                   "import importlib; importlib.import_module('explainers.explain')"])
def test_public_explain_is_the_function_whatever_was_imported_first(first):
    code = (f"{first}\nfrom explainers import load_model, load_image, explain, predict, overlay\n"
            "import explainers, explainers.explain\n"
            "from explainers.explain import explain as old_path\n"
            "assert callable(explain) and explain is explainers.explain is old_path, explain\n"
            "assert callable(predict)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

