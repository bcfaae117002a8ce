"""Parse PyGithub's recorded GitHub REST exchanges (``tests/ReplayData/*.txt``).

A file holds one or more exchanges; each is ten lines followed by a blank line:
scheme, method, host, port, path with query, request headers (Python dict literal),
request body (``None`` or text), response status, response headers (Python list of
``(name, value)`` tuples), response body (one line of JSON, possibly empty).

The parser is pure (no network, no side effects) so that the emulator's tests and the
crawler's tests can both check their shapes against real GitHub payloads.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pipeline.errors import UserError

_LINES_PER_EXCHANGE = 10


@dataclass(frozen=True)
class Exchange:
    """One recorded request and GitHub's response to it."""

    scheme: str
    method: str
    host: str
    port: int | None
    path: str  # path with query string, as sent
    request_headers: dict[str, str]
    request_body: str | None
    status: int
    response_headers: list[tuple[str, str]]
    body: str  # raw response body ("" when empty, e.g. on 304)
    source: str = field(default="", compare=False)  # "file:line" of the exchange's first line

    @property
    def route(self) -> str:
        """The path without its query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (last value wins)."""
        return dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))

    def header(self, name: str) -> str | None:
        """A response header, looked up case-insensitively (``None`` when absent)."""
        lname = name.lower()
        for key, value in self.response_headers:
            if key.lower() == lname:
                return value
        return None

    def json(self) -> Any:
        """The response body decoded as JSON (``None`` for an empty body)."""
        return json.loads(self.body) if self.body.strip() else None


def _literal(text: str, where: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise UserError(f"{where}: not a Python literal: {text[:60]!r} ({e})") from None


def parse_replay(path: str | Path) -> list[Exchange]:
    """Read one replay file and return its exchanges in order.

    Raises :class:`~pipeline.errors.UserError` naming the file and line when the file
    does not follow the ten-lines-then-blank format.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{path}: cannot read replay file ({e.strerror})") from None
    lines = text.splitlines()
    exchanges: list[Exchange] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "":
            i += 1
            continue
        block = lines[i : i + _LINES_PER_EXCHANGE]
        where = f"{path}:{i + 1}"
        # A final exchange with an empty body may lose its last line to splitlines().
        if len(block) == _LINES_PER_EXCHANGE - 1 and i + len(block) == len(lines):
            block = [*block, ""]
        if len(block) != _LINES_PER_EXCHANGE:
            raise UserError(f"{where}: truncated exchange ({len(block)} of 10 lines)")
        scheme, method, host, port, req_path, req_headers, req_body, status, resp_headers, body = block
        try:
            status_code = int(status)
        except ValueError:
            raise UserError(f"{path}:{i + 8}: response status {status!r} is not a number") from None
        exchanges.append(
            Exchange(
                scheme=scheme,
                method=method,
                host=host,
                port=None if port == "None" else int(port),
                path=req_path,
                request_headers=dict(_literal(req_headers, f"{path}:{i + 6}")),
                request_body=None if req_body == "None" else req_body,
                status=status_code,
                response_headers=[(str(k), str(v)) for k, v in _literal(resp_headers, f"{path}:{i + 9}")],
                body=body,
                source=where,
            )
        )
        i += _LINES_PER_EXCHANGE
    return exchanges


def parse_replay_dir(directory: str | Path) -> dict[str, list[Exchange]]:
    """Parse every ``*.txt`` replay file of a folder: ``{file stem: exchanges}``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: replay folder not found")
    return {p.stem: parse_replay(p) for p in sorted(directory.glob("*.txt"))}
