"""The README's newcomer path, followed literally on a fresh clone: the blocks README.md marks
`<!-- newcomer-path -->` are run in order, exactly as written (so the test cannot drift from
the page): `scripts/serve` left running, the environment activated, tour.py written and run
twice, a seed run twice, then the documented CLI commands (`workflows`, `inspect`,
`inspect --json`, `purge --dry-run`).

What differs from a newcomer's machine, and why: the clone's `.venv` is a link to this
suite's environment (installing takes minutes); `scripts/test` is not run (it is this suite);
and the server's port comes from PYNENC_SIDECAR_PORT (and the clients' address from
PYNENC_SIDECAR_ADDRESS), documented variables, because other suites may hold 50051 on a
shared machine. Nothing of the worktree's environment leaks in: no PYNENC_SIDECAR_* variable,
and the environment's bin directory is taken off PATH, as in a fresh terminal.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- newcomer-path"


@dataclass(frozen=True)
class Block:
    language: str
    text: str


def newcomer_blocks(readme: str) -> list[Block]:
    """Each fenced code block that follows a newcomer-path marker, in page order."""
    blocks = []
    for match in re.finditer(re.escape(MARKER) + r".*?-->\s*\n```(\w+)\n(.*?)\n```", readme, re.S):
        blocks.append(Block(match.group(1), match.group(2)))
    return blocks


def commands(block: Block) -> list[str]:
    """The shell commands of a block, as a terminal runs them (a trailing comment stays)."""
    return [line for line in block.text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def fresh_terminal_env(port: int) -> dict[str, str]:
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_") and k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    env["PYNENC_SIDECAR_PORT"] = str(port)
    env["PYNENC_SIDECAR_ADDRESS"] = f"127.0.0.1:{port}"
    return env


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True, timeout=120)
    # scripts/serve would install into .venv when its stamp (the pyproject files' hash, as
    # scripts/_env.sh computes it) is not there; an install would repoint this suite's editable
    # install at the clone: refuse.
    pyprojects = [target / p for p in ("pyproject.toml", "stubs/python/pyproject.toml", "sdk/python/pyproject.toml")]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in pyprojects)).hexdigest()[:16]
    if not any((Path(sys.prefix) / f".installed-{digest}-{extras}").exists() for extras in ("base", "dev")):
        pytest.skip("a pyproject.toml differs from the committed one: commit it (or run scripts/test) first")
    (target / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    return target


def test_the_readme_newcomer_path_works_as_written(clone: Path) -> None:
    blocks = newcomer_blocks((clone / "README.md").read_text())
    assert len(blocks) >= 6, "README.md marks the newcomer path's blocks with <!-- newcomer-path -->"
    port = free_port()
    env = fresh_terminal_env(port)
    setup, rest = blocks[0], blocks[1:]
    assert [c.split()[0] for c in commands(setup)] == ["scripts/serve", "scripts/test"]

    log = (clone.parent / "serve.log").open("w")
    server = subprocess.Popen(["bash", "-c", commands(setup)[0]], cwd=clone, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health = [str(Path(sys.prefix) / "bin" / "pynenc-sidecar"), "health", "--port", str(port), "--timeout", "1"]
        wait_until(lambda: server.poll() is not None or subprocess.run(health, capture_output=True).returncode == 0,
                   120, "scripts/serve to serve")
        assert server.poll() is None, (clone.parent / "serve.log").read_text()

        prelude: list[str] = []  # what the terminal keeps: `source`, `export`
        outputs: dict[str, list[str]] = {}
        for block in rest:
            if block.language == "python":
                name = block.text.splitlines()[0].removeprefix("#").strip()
                (clone / name).write_text(block.text + "\n")
                continue
            assert block.language == "bash", block
            for command in commands(block):
                if command.startswith(("source ", "export ")):
                    prelude.append(command)
                    continue
                script = "\n".join(["set -e", *prelude, command])
                done = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True,
                                      timeout=120)
                assert done.returncode == 0, f"{command}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
                key = command.split("#")[0].strip()
                outputs.setdefault(key, []).append(done.stdout)
        assert prelude == ["source .venv/bin/activate"]

        first, replay = outputs["python tour.py"]
        assert "charging A-1" in first and "charging" not in replay
        assert first.splitlines()[-1] == replay.splitlines()[-1]  # the same result, replayed
        seed = [json.loads(out) for out in outputs["python examples/run_seed.py process_order_workflow order-1"]]
        assert [s["replayed"] for s in seed] == [False, True] and seed[0]["result"] == seed[1]["result"]

        listed = outputs["pynenc-sidecar workflows"][0]
        assert "order-42" in listed and "SUCCESS" in listed
        assert outputs["pynenc-sidecar inspect order-42"][0].startswith("Workflow order-42 (app pynenc)")
        report = json.loads(outputs["pynenc-sidecar inspect order-42 --json"][0])
        assert report["status"] == "SUCCESS" and report["data"] == {"status": "paid"}
        dry = outputs["pynenc-sidecar purge --workflow-id order-42 --dry-run"][0]
        assert dry.startswith("dry run, nothing deleted: the purge would delete 1 workflow run(s), 2 task(s), ")
        again = subprocess.run(["bash", "-c", "\n".join([*prelude, "pynenc-sidecar inspect order-42 --json"])],
                               cwd=clone, env=env, capture_output=True, text=True, timeout=60)
        assert json.loads(again.stdout) == report  # the dry run deleted nothing

        # The store's files are there, and git ignores them.
        assert (clone / "pynenc-sidecar.db").exists()
        status = subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=clone, capture_output=True,
                                text=True, check=True).stdout
        assert "pynenc-sidecar.db" not in status and status.split() == ["??", "tour.py"], status
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(30) == 0, (clone.parent / "serve.log").read_text()
        log.close()
