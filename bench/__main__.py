"""``python -m bench``: the pipeline benchmark (see :mod:`bench.pipeline`)."""

from __future__ import annotations

import sys

from bench.pipeline import main

sys.exit(main())
