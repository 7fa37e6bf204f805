"""The floor of every direct dependency in pyproject.toml as a pip constraint (``name==floor``), one a line.

``uv pip install --resolution lowest-direct`` alone may settle above a floor when a newer release resolves more
easily; pinning each floor tests the versions pyproject.toml promises.
"""

import re
import sys
import tomllib

from packaging.requirements import Requirement

project = tomllib.load(open(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", "rb"))["project"]
for line in project["dependencies"]:
    requirement = Requirement(line)
    floors = [s.version for s in requirement.specifier if s.operator in (">=", "==")]
    if floors:
        print(f"{re.sub(r'[-_.]+', '-', requirement.name).lower()}=={floors[0]}")
