"""Image builders behind one small interface: the `docker` CLI, `buildah` or `podman`, chosen by
what is installed or by the settings. Passwords reach them on stdin, never as arguments."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from migration_pipeline.images.registry import Credentials, is_local

PREFERENCE = ("docker", "buildah", "podman")


class BuildError(Exception):
    """A build or a push failed; the message holds the tool's last lines."""


@dataclass
class Builder:
    """One container tool. `storage` keeps buildah/podman images out of the system store."""

    tool: str
    insecure_registries: bool = False
    storage: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def _command(self, *args: str) -> list[str]:
        command = [self.tool]
        if self.tool in ("buildah", "podman") and self.storage is not None:
            command += [
                "--storage-driver",
                "vfs",
                "--root",
                str(self.storage / "root"),
                "--runroot",
                str(self.storage / "run"),
            ]
        return command + list(args)

    def _execute(
        self, args: list[str], stdin: str | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self._command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.extra_env},
        )

    def _run(self, *args: str, stdin: str | None = None) -> str:
        result = self._execute(list(args), stdin)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
            raise BuildError(f"`{self.tool} {args[0]}` failed:\n{tail}")
        return result.stdout

    def _tls(self, image: str) -> list[str]:
        insecure = self.insecure_registries or is_local(image.split("/", 1)[0])
        return ["--tls-verify=false"] if insecure and self.tool != "docker" else []

    def login(self, host: str, credentials: Credentials) -> None:
        args = ["login", "--username", credentials.username, "--password-stdin"]
        if self.tool != "docker":
            args += self._tls(host + "/x")
        self._run(*args, host, stdin=credentials.password.get_secret_value())

    def build(self, context: Path, dockerfile: Path, image: str, target: str | None = None) -> None:
        stage = ["--target", target] if target else []
        if self.tool == "docker":
            self._run("build", "-f", str(dockerfile), *stage, "-t", image, str(context))
        else:
            self._run(
                "build",
                "--isolation",
                "chroot",
                "--layers",
                "-f",
                str(dockerfile),
                *stage,
                "-t",
                image,
                str(context),
            )

    def push(self, image: str) -> str:
        """Push `image`; return the digest the registry stored."""
        if self.tool == "docker":
            self._run("push", image)
            reference = self._run(
                "image", "inspect", "--format", "{{index .RepoDigests 0}}", image
            ).strip()
            return reference.rsplit("@", 1)[-1]
        with tempfile.TemporaryDirectory() as scratch:
            digest_file = Path(scratch) / "digest"
            self._run("push", *self._tls(image), "--digestfile", str(digest_file), image)
            return digest_file.read_text().strip()

    def run_image(
        self, reference: str, command: list[str], env: dict[str, str], timeout: float = 600
    ) -> tuple[int, str]:
        """Start `reference`, run `command` in it and remove it: (exit code, output). docker
        and podman run it with no network; buildah makes a working container and runs in it
        with chroot isolation, which has no network namespace of its own (buildah refuses
        `--network none` there), as its builds do."""
        env_args = [
            arg for key, value in sorted(env.items()) for arg in ("--env", f"{key}={value}")
        ]
        if self.tool == "buildah":
            container = self._run("from", "--quiet", *self._tls(reference), reference).strip()
            try:
                return self._attempt(
                    ["run", "--isolation", "chroot", *env_args, container, "--", *command],
                    timeout,
                )
            finally:
                self._attempt(["rm", container], timeout)
        return self._attempt(
            ["run", "--rm", "--network", "none", *env_args, reference, *command], timeout
        )

    def _attempt(self, args: list[str], timeout: float) -> tuple[int, str]:
        try:
            result = self._execute(args, timeout=timeout)
        except subprocess.TimeoutExpired:
            return 124, f"`{self.tool} {args[0]}` did not finish within {timeout:g} s"
        return result.returncode, (result.stdout or "") + (result.stderr or "")


def _usable(tool: str) -> bool:
    if not shutil.which(tool):
        return False
    if tool != "docker":
        return True
    # The docker CLI is often installed without an engine to talk to.
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_builder(
    preferred: str | None = None, storage: Path | None = None, insecure_registries: bool = False
) -> Builder:
    """The builder to use: `preferred` if it is installed, else the first of docker, buildah,
    podman found on PATH."""
    candidates = [preferred] if preferred else list(PREFERENCE)
    for tool in candidates:
        if _usable(tool):
            return Builder(tool, insecure_registries=insecure_registries, storage=storage)
    wanted = preferred or " or ".join(PREFERENCE)
    raise BuildError(
        f"no image builder found: install {wanted} (or set `builder:` in the target "
        "settings to one that is installed)"
    )
