"""The `playbook` command leaves out jsonschema's "iri" format check (its Lark grammar costs ~2.5 s per command that
reads a notebook) and still reads and validates the shipped notebooks."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys, glob, playbook.cli, nbformat
assert sys.modules.get("rfc3987_syntax", "absent") is None, sys.modules.get("rfc3987_syntax")
import jsonschema
assert "iri" not in jsonschema.FormatChecker.checkers  # the one check that went
paths = sorted(glob.glob("notebooks/*.ipynb"))
assert paths
for path in paths:
    nbformat.validate(nbformat.read(path, as_version=4))
print(len(paths))
"""


def test_the_cli_reads_notebooks_without_the_iri_format_check():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout) >= 7
