"""The shared helpers library the playbook's notebooks call (installed as ``playbook.helpers``).

Each module holds one concept; notebooks import what they need, e.g.
``from playbook.helpers import memory, server``.
"""
