"""A real Label Studio for tests and benchmarks: ``with LabelStudioServer(folder, users) as ls: ls.url``.

Runs the Label Studio that ``.ci/install-label-studio.sh`` installs into its own venv
(``$LABEL_STUDIO_VENV``, default ``~/.cache/mine/label-studio-<version>``) on 127.0.0.1 with a
throwaway data folder, starting from the empty database the script migrated once (when it is
there): ``label-studio init`` creates each user headless (e-mail, password and
a legacy API token, the first one the organization's owner), ``label-studio start`` serves
them. Nothing leaves the machine: version checks, analytics and error reporting are off.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

def _pinned_version() -> str:
    """The version .ci/install-label-studio.sh installs (one place says it)."""
    script = (Path(__file__).resolve().parents[1] / ".ci" / "install-label-studio.sh").read_text(encoding="utf-8")
    return re.search(r'LABEL_STUDIO_VERSION:-([0-9][^}"]*)', script).group(1)


VERSION = os.environ.get("LABEL_STUDIO_VERSION") or _pinned_version()
VENV = Path(os.environ.get("LABEL_STUDIO_VENV") or Path.home() / ".cache" / "mine" / f"label-studio-{VERSION}")
BIN = VENV / "bin" / "label-studio"


def missing_reason() -> str | None:
    """Why Label Studio cannot run here (None: it can)."""
    if not BIN.is_file():
        return (f"Label Studio {VERSION} is not installed at {VENV} (bash .ci/install-label-studio.sh installs it; "
                "LABEL_STUDIO_VENV points elsewhere)")
    return None


@dataclass
class User:
    email: str
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    token: str = field(default_factory=lambda: secrets.token_hex(20))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudioServer:
    """Label Studio on 127.0.0.1 with ``users`` (e-mails) created headless; stopped on exit."""

    def __init__(self, folder: Path, emails: list[str], start_timeout: float = 240.0) -> None:
        self.folder = Path(folder)
        self.users = {e: User(e) for e in emails}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.timeout = start_timeout
        self.timings: dict[str, float] = {}
        self.proc: subprocess.Popen | None = None
        self.log = self.folder / "label-studio.log"

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "HEARTEX_"))}
        return {**env, "LABEL_STUDIO_BASE_DATA_DIR": str(self.folder / "data"), "LATEST_VERSION_CHECK": "false",
                "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
                "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true"}

    def _run(self, *args: str) -> None:
        with self.log.open("a") as log:
            done = subprocess.run([str(BIN), *args, "--data-dir", str(self.folder / "data")], env=self._env(),
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600)
        if done.returncode:
            raise RuntimeError(f"label-studio {args[0]} exited with {done.returncode}: {self._log_tail()}")

    def _log_tail(self, lines: int = 15) -> str:
        """The end of Label Studio's log, for a failure message (it holds no token)."""
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "LabelStudioServer":
        import httpx

        self.folder.mkdir(parents=True, exist_ok=True)
        template = VENV / "migrated" / "label_studio.sqlite3"
        if template.is_file():  # migrated once by the install script: init only adds the users
            (self.folder / "data").mkdir(exist_ok=True)
            shutil.copyfile(template, self.folder / "data" / template.name)
        for i, u in enumerate(self.users.values()):
            t = time.monotonic()
            self._run("init", "--username", u.email, "--password", u.password, "--user-token", u.token, "--quiet",
                      *(["--enable-legacy-api-token"] if i == 0 else []))
            self.timings[f"init {u.email}"] = time.monotonic() - t
        t = time.monotonic()
        log = self.log.open("a")
        self.proc = subprocess.Popen(
            [str(BIN), "start", "--data-dir", str(self.folder / "data"), "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(self.port)], env=self._env(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        while time.monotonic() - t < self.timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"label-studio start exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    self.timings["start"] = time.monotonic() - t
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"Label Studio did not answer on {self.url} within {self.timeout:.0f} s: {self._log_tail()}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def client(self, email: str):
        """An SDK client acting as ``email``."""
        from label_studio_sdk import LabelStudio

        return LabelStudio(base_url=self.url, api_key=self.users[email].token)
