"""Background processes and waiting: the demo's harness, shared with the tests."""

from demo.processes import background, wait_for

__all__ = ["background", "wait_for"]
