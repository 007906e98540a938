"""The test tree itself: pytest imports test files by basename (no __init__.py), so two files of one name
in different folders stop the whole collection on a clean clone."""

from collections import Counter
from pathlib import Path


def test_no_two_test_files_share_a_basename():
    names = Counter(p.name for p in (Path(__file__).parents[1]).rglob("test_*.py"))
    assert not [n for n, c in names.items() if c > 1], "rename one of them (e.g. *_engine.py for the real-vLLM one)"
