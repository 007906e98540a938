"""specdecode-playbook: measure, then decide whether to turn on speculative decoding in vLLM."""

import os as _os

__version__ = "0.1.0"

# In a clone, helpers/, notebooks/ and environments/ sit beside playbook/; setuptools' package-dir maps them to
# playbook.helpers, playbook.notebooks and playbook.environments when it installs. Searching the clone's root as
# well lets `python -m playbook` run from a clone whose installed copy is not editable (`pip install .`): there the
# clone's playbook/ shadows the installed package and would lack its helpers.
_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "helpers")) and _os.path.isfile(_os.path.join(_root, "helpers", "__init__.py")):
    __path__.append(_root)  # noqa: F821 (a package's __path__)
