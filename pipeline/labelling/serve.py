"""Serve a labelling app with uvicorn on a socket bound first (so ``--port 0`` picks a free port
and the printed URL is the real one)."""

from __future__ import annotations

import socket
import threading
import uvicorn

from pipeline.errors import UserError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; a busy port is a :class:`UserError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UserError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); try another --port") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def allowed_hosts_for(host: str) -> list[str]:
    """Host header values the app accepts (guards against DNS rebinding)."""
    if host in ("0.0.0.0", "::"):
        return ["*"]
    return sorted({host, "127.0.0.1", "localhost"} if host in LOCAL_HOSTS else {host})


def serve(app, sock: socket.socket) -> None:
    """Run until interrupted (Ctrl-C)."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    server.run(sockets=[sock])


class BackgroundServer:
    """The app served from a thread (tests, scripts): ``with BackgroundServer(app) as url: ...``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(1000):
            if self.server.started:
                return self.url
            if not self.thread.is_alive():
                break
            threading.Event().wait(0.01)
        self.__exit__()
        raise RuntimeError(f"the labelling server at {self.url} did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
