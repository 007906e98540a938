"""YAML for profiles and ``-p`` values: the safe loader, without anchors, aliases or duplicate keys.

A profile is a flat mapping written by hand. Anchors and aliases buy nothing there and open the door to
an "alias bomb" (300 bytes that expand to gigabytes); a key written twice is almost always a mistake
whose first value would be lost silently. Both are refused with the line and column.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import ProfileError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and duplicate mapping keys."""

    def compose_node(self, parent, index):  # noqa: D401 - PyYAML hook
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark = event.start_mark
            raise ProfileError(
                f"{self.name}: YAML anchors and aliases (&name, *name) are not allowed "
                f"(line {mark.line + 1}, column {mark.column + 1})",
                "write each value out in full",
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                mark = key_node.start_mark
                raise ProfileError(f"{self.name}: a key that is a list or a mapping (line {mark.line + 1}, column "
                                   f"{mark.column + 1})", "keys are parameter names: write 'name: value'") from None
            if key in seen:
                raise ProfileError(
                    f"{self.name}: key {short(key)} appears twice (lines {seen[key]} and {key_node.start_mark.line + 1})",
                    "keep one of them",
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load(text: str, source: str = "<yaml>") -> Any:
    """Parse YAML text with :class:`_StrictLoader`; syntax errors raise yaml.YAMLError as usual."""
    loader = _StrictLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: what an error message may quote of a user's value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
