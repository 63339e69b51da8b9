"""Settings shared by the test suite and the doctests of ``src/``.

Doctests run on the demo data where they need data: ``load_demo()`` writes it
once into the data folder and reuses it. A headless backend keeps figures off
the screen.
"""

import matplotlib

matplotlib.use("Agg")
