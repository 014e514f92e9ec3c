"""An embedded stand-in for the Dagster+ control plane, for the demo and the tests.

It serves the subset of Dagster+'s GraphQL API that a Serverless-to-Hybrid migration and a
Dagster+ agent use, over real HTTP on loopback, with real token checks, state in SQLite, timed
behaviour and fault injection. See DESIGN.md ("The sandbox").
"""

from dagster_plus_sandbox.clock import ManualClock
from dagster_plus_sandbox.server import Sandbox

__all__ = ["ManualClock", "Sandbox"]
