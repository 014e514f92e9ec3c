"""Helpers the tests share: stand-ins for the agent side, servers, waiting."""
