"""Shared pytest fixtures. Keep each fixture small and documented; add new ones below."""

from __future__ import annotations

import pytest


@pytest.fixture
def emulator(request):
    """A running GitHub emulator (real HTTP server on 127.0.0.1, free port), stopped afterwards.

    Defaults to 60 issues per repository, seed 0, no faults. Override any
    ``EmulatorConfig`` field with indirect parametrization::

        @pytest.mark.parametrize("emulator", [{"rate_limit": 3}], indirect=True)
        def test_x(emulator): ...
    """
    from pipeline.emulator.server import EmulatorConfig, run_emulator

    overrides = getattr(request, "param", None) or {}
    cfg = EmulatorConfig(**{"issues": 60, **overrides})
    with run_emulator(cfg) as emu:
        yield emu
