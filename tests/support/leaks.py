"""Where the sandbox's tokens may appear: only in the agent's 0600 token file."""

from __future__ import annotations

import re
import stat
from pathlib import Path

TOKEN = re.compile(rb"(user|agent):acme:[0-9a-f]{32}")


def assert_tokens_only_in_the_token_file(output: str, *roots: Path) -> None:
    """No token in `output` or in any file under `roots` but one `agent-token.env`, mode 0600."""
    assert not TOKEN.search(output.encode()), "a token is in the output"
    token_files = []
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            if path.name == "agent-token.env":
                token_files.append(path)
                assert stat.S_IMODE(path.stat().st_mode) == 0o600
            else:
                assert not TOKEN.search(path.read_bytes()), f"a token is in {path}"
    assert len(token_files) == 1, token_files
