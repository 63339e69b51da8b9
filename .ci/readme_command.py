"""Print one of the README's fresh-machine commands (``demo`` or ``test``).

The README marks them with ``<!-- command:NAME -->`` just before a fenced block;
CI runs the marked block verbatim, so what the README says is what is tested.
"""

import re
import sys
from pathlib import Path

name = sys.argv[1]
text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
match = re.search(rf"<!-- command:{name} -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
if not match:
    sys.exit(f"README.md has no block marked <!-- command:{name} -->")
lines = [line.rstrip("\\").strip() for line in match.group(1).strip().splitlines()]
print(" ".join(line for line in lines if line))
