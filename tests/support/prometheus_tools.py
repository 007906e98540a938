"""Debian's ``prometheus`` package (prometheus, promtool) for the tests that run it for real."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def prometheus_tool(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``: installed here with apt-get when missing and we are root,
    else the test fails saying what to run (`make test` installs the package as root)."""
    found = shutil.which(name)
    if not found and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus",
                       shell=True, capture_output=True, timeout=600)
        found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed and could not be installed here: run apt-get install -y prometheus "
                    "(Debian's package ships prometheus and promtool; `make test` installs it as root)")
    return found
