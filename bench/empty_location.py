"""An empty code location, the baseline for bench/code_location_load.py."""

import dagster as dg

defs = dg.Definitions()
