"""The SDK toolchains the suites need: a missing one fails the test (never skips), saying
what to install (scripts/test installs what it can)."""

from __future__ import annotations

import shutil

import pytest

INSTALL = {
    "go": "Go 1.22 or later (https://go.dev/dl/, or apt-get install golang-go)",
    "node": "Node.js 20 or later (apt-get install nodejs npm)",
    "npm": "npm (apt-get install npm)",
    "java": "a JDK 17 or later (apt-get install openjdk-17-jdk-headless)",
    "mvn": "Maven 3.9 (apt-get install maven)",
}


def require(*tools: str) -> None:
    """Fail the test unless every tool is on PATH."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.fail("not installed: " + "; ".join(f"{tool} — install {INSTALL.get(tool, tool)}" for tool in missing)
                    + ". The SDK suites never skip a language.", pytrace=False)
