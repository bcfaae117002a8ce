"""CLI commands of the emulator stage (thin wrappers over library calls): ``emulate``."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from pipeline.errors import UserError


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the `mine` app."""

    @app.command("emulate")
    def emulate(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (keep it local)."),
        port: int = typer.Option(0, "--port", help="Port to listen on; 0 picks a free port and prints it."),
        seed: int = typer.Option(0, "--seed", help="Seed of the synthetic data and of the fault draws."),
        issues: int = typer.Option(
            200, "--issues", help="Synthetic issues per repository; pull requests (about a quarter as many) come on top."),
        repo_issues: Optional[List[str]] = typer.Option(
            None, "--repo-issues", metavar="OWNER/NAME=N",
            help="Synthetic issues of one repository, overriding --issues for it (repeatable), e.g. pytorch/pytorch=4000."),
        latency_ms: int = typer.Option(0, "--latency-ms", help="Sleep this long before answering each API request."),
        error_rate: float = typer.Option(
            0.0, "--error-rate", help="Fraction of API requests answered 502/503 (deterministic from the seed)."),
        rate_limit: int = typer.Option(
            5000, "--rate-limit", help="Requests per window and token (one bucket when unauthenticated)."),
        reset_seconds: int = typer.Option(3600, "--reset-seconds", help="Length of a rate-limit window in seconds."),
        secondary_every: int = typer.Option(
            0, "--secondary-every", help="Every K-th request hits the secondary limit (403/429, Retry-After: 1); 0 = off."),
        truncate_rate: float = typer.Option(
            0.0, "--truncate-rate", help="Fraction of 200 responses whose JSON body is cut in the middle."),
        corpus: Optional[List[Path]] = typer.Option(
            None, "--corpus", metavar="FILE",
            help="Also serve the real issues of this JSONL file (format of ../shared/github-issues) under their "
                 "repository and number, with their state and labels as the file says (repeatable)."),
        relevant_corpus: Optional[List[Path]] = typer.Option(
            None, "--relevant-corpus", metavar="FILE",
            help="Serve this file's issues as the study saw them when it sampled them: closed, with their "
                 "source's required labels and none of its excluded ones (repeatable)."),
        sources_file: Optional[Path] = typer.Option(
            None, "--sources", metavar="FILE", help="Sources YAML whose rules --relevant-corpus applies (default: pipeline/sources.yaml)."),
        synthetic: bool = typer.Option(True, "--synthetic/--no-synthetic", help="Serve synthetic issues too; --no-synthetic serves only the corpus issues."),
        clock_skew: float = typer.Option(
            0.0, "--clock-skew", help="Seconds added to the emulator's clock (rate-limit resets, Date headers): a GitHub whose clock differs from yours."),
        reset_skew: int = typer.Option(
            0, "--reset-skew", help="Seconds added to the reset times it reports (headers, /rate_limit) but not to its clock: e.g. -30, a reset already past while still limited."),
        token: Optional[list[str]] = typer.Option(
            None, "--token", help="Accept only this token (repeatable; others get 401 Bad credentials). Each token has its own budget."),
    ) -> None:
        """Serve a local GitHub REST API emulator with synthetic issues of the six ONNX
        converters' repositories (pytorch/pytorch, onnx/tensorflow-onnx, PaddlePaddle/Paddle2ONNX,
        onnx/sklearn-onnx, ENOT-AutoDL/onnx2torch, onnx/onnx-tensorflow, with their real label
        names) and real ones from --corpus files, timelines, rate limits and injected faults.

        Real issues keep their title, body, labels and comments byte for byte; their
        timelines carry one `commented` event per comment and a `closed` (or `referenced`)
        event with a commit, so the study's data-availability filter keeps them.

        Point a crawler at the printed URL (e.g. `mine crawl --api-url URL`). Admin endpoints:
        GET /_emulator/stats, POST /_emulator/touch?repo=OWNER/NAME&n=K (K issues change),
        POST /_emulator/delete?repo=OWNER/NAME&number=N (issue N is deleted: 410 Gone),
        POST /_emulator/reset_stats.
        Stops on Ctrl-C.
        """
        from pipeline.emulator.server import Emulator, EmulatorConfig

        sizes = {}
        for item in repo_issues or ():
            repo, _, n = item.rpartition("=")
            if not re.fullmatch(r"[^/\s=]+/[^/\s=]+", repo) or not n.isdigit():
                raise UserError(f"--repo-issues {item!r}: use OWNER/NAME=N, e.g. pytorch/pytorch=4000")
            sizes[repo] = int(n)
        cfg = EmulatorConfig(seed=seed, issues=issues, repo_issues=sizes, latency_ms=latency_ms, error_rate=error_rate,
                             rate_limit=rate_limit, reset_seconds=reset_seconds, secondary_every=secondary_every,
                             truncate_rate=truncate_rate, clock_skew=clock_skew, reset_skew=reset_skew, tokens=tuple(token or ()),
                             host=host, port=port,
                             corpus=tuple(map(str, corpus or ())), relevant_corpus=tuple(map(str, relevant_corpus or ())),
                             sources=str(sources_file) if sources_file else None, synthetic=synthetic)
        try:
            emu = Emulator(cfg)
            url = emu.url  # binds the socket, so a busy port fails here
        except ValueError as e:
            raise UserError(f"emulate: {e}") from None
        except OSError as e:
            raise UserError(f"emulate: cannot listen on {host}:{port}: {e.strerror or e}") from None
        console = Console(highlight=False)
        console.print(f"GitHub emulator listening on {url}", soft_wrap=True)
        ds = emu.dataset
        real = sum(1 for recs in ds.issues.values() for x in recs.values() if x.real)
        served = ", ".join(ds.repo_names)
        what = f"{issues} synthetic issues per repository (seed {seed})" if synthetic else "no synthetic issues"
        console.print(f"  {what}, {real} real issues from corpus files: {served}; Ctrl-C to stop", soft_wrap=True)
        # SIGTERM (e.g. from a script that started us) stops as cleanly as Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            emu.serve_forever()
        except KeyboardInterrupt:
            console.print("stopped")
