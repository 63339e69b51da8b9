"""Print the oldest and the newest supported Python (``3.11 3.13``), read from
pyproject.toml's ``Programming Language :: Python :: 3.X`` classifiers, and check
that ``requires-python`` names the oldest."""

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path(__file__).resolve().parents[1].joinpath("pyproject.toml")
                        .read_text())["project"]
versions = sorted({tuple(map(int, m.groups())) for c in project["classifiers"]
                   if (m := re.fullmatch(r"Programming Language :: Python :: (\d+)\.(\d+)", c))})
if not versions:
    sys.exit("pyproject.toml lists no 'Programming Language :: Python :: 3.X' classifier")
oldest, newest = (f"{v[0]}.{v[1]}" for v in (versions[0], versions[-1]))
if project["requires-python"] != f">={oldest}":
    sys.exit(f"requires-python is {project['requires-python']!r}; the classifiers say >={oldest}")
print(oldest, newest)
