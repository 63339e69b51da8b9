"""Settings shared by the property-based tests (``tests/test_fuzz_*.py``).

CI runs each property with a fixed number of examples, derandomized (the same
examples on every run). A longer, random run sets the number of examples per
property in the environment::

    SPARSE_CONNECTOME_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_*.py -p no:cacheprovider
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

ENV = "SPARSE_CONNECTOME_FUZZ_EXAMPLES"


def fuzz_settings(max_examples: int) -> settings:
    """``max_examples`` derandomized examples, or the environment's number, random."""
    wanted = os.environ.get(ENV)
    return settings(max_examples=int(wanted) if wanted else max_examples, deadline=None,
                    derandomize=not wanted, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
