"""Serve a study over HTTP, on loopback unless asked: optuna-dashboard on its storage, TensorBoard on its tb/."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from hpo.errors import HpoError, StudyError
from hpo.paths import StudyPaths

__all__ = [
    "LOOPBACK",
    "RunningServer",
    "ServeError",
    "binds_all_interfaces",
    "free_port",
    "start_dashboard",
    "start_tensorboard",
]

#: The default host: reachable from this machine only.
LOOPBACK = "127.0.0.1"


class ServeError(HpoError):
    """A server cannot start: the port is taken, or the address cannot be bound."""


@dataclass
class RunningServer:
    """A bound server: :meth:`serve_forever` blocks until Ctrl-C (``KeyboardInterrupt``), then call :meth:`close`."""

    url: str
    host: str
    port: int
    study: str
    source: str
    artifact_dir: Path | None = None
    _serve: Callable[[], object] = field(repr=False, default=lambda: None)
    _close: Callable[[], None] = field(repr=False, default=lambda: None)

    def serve_forever(self) -> None:
        """Answer requests until interrupted (Ctrl-C raises ``KeyboardInterrupt`` here) or :meth:`close`."""
        self._serve()

    def close(self) -> None:
        """Stop answering and release the port."""
        self._close()

    def to_json(self) -> dict[str, Any]:
        """Where the server listens and what it shows, as printed by ``--json``."""
        return {
            "url": self.url,
            "host": self.host,
            "port": self.port,
            "study": self.study,
            "source": self.source,
            "artifact_dir": str(self.artifact_dir) if self.artifact_dir else None,
        }


def binds_all_interfaces(host: str) -> bool:
    """True for ``0.0.0.0``, ``::`` and empty hosts, which other machines can reach."""
    return host in ("", "0.0.0.0", "::", "[::]")


def free_port(host: str = LOOPBACK, after: int | None = None) -> int:
    """A port that can be bound on ``host`` now: the first free one above ``after``, else one the OS picks."""
    candidates = list(range(after + 1, min(after + 101, 65536))) if after is not None else []
    for port in [*candidates, 0]:
        try:
            with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
                sock.bind((host, port))
                return int(sock.getsockname()[1])
        except OSError:
            continue
    raise ServeError(f"{host}: no free port to suggest; check that this machine has the address {host}")


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host.strip("[]")).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def _bind_error(host: str, port: int, exc: OSError, flag: str) -> ServeError:
    if exc.errno == errno.EADDRINUSE:
        return ServeError(
            f"{host}:{port} is already in use (another dashboard or server?); stop it, or pass {flag} "
            f"{free_port(host, after=port)}, which is free"
        )
    if exc.errno == errno.EACCES:
        return ServeError(
            f"{host}:{port}: binding needs more rights (ports below 1024 are privileged); try {flag} 8080"
        )
    return ServeError(
        f"{host}:{port}: cannot listen there ({exc.strerror or exc}); check --host (an address of this machine, "
        f"such as {LOOPBACK}) and {flag}"
    )


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No line per request on stderr: the dashboard polls every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_dashboard(
    name: str, *, root: Path = Path("studies"), storage: str | None = None, host: str = LOOPBACK, port: int = 8080
) -> RunningServer:
    """Bind optuna-dashboard on ``host:port`` for the storage of study ``name`` (and its artifact store, if any).

    The study must exist; the dashboard shows every study of that storage. ``<root>/<study>/artifacts/`` is served
    as the artifact store when that folder exists.

    Raises:
        StudyError: no such study or storage.
        ServeError: the port is taken (the message names a free one) or the host cannot be bound.
    """
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    from hpo.study.access import load_study
    from hpo.study.storage import open_storage, redact_url

    _, paths, url = load_study(name, root, storage)
    rdb = open_storage(url, create=False)
    artifact_dir = paths.study_dir / "artifacts"
    store = FileSystemArtifactStore(str(artifact_dir)) if artifact_dir.is_dir() else None
    app = optuna_dashboard.wsgi(rdb, artifact_store=store)
    server_class = type("_Server", (_ThreadingWSGIServer,), {"address_family": _family(host)})
    try:
        httpd = server_class((host, port), _QuietHandler)
    except OSError as exc:
        raise _bind_error(host, port, exc, "--port") from None
    httpd.set_app(app)
    bound = int(httpd.server_address[1])
    running = threading.Event()

    def serve() -> None:
        running.set()
        try:
            httpd.serve_forever()
        finally:
            running.clear()

    def close() -> None:
        if running.is_set():  # serving in another thread: stop it first (Ctrl-C has already stopped this one's)
            httpd.shutdown()
        httpd.server_close()

    return RunningServer(
        url=f"http://{_url_host(host)}:{bound}/dashboard/studies/{rdb.get_study_id_from_name(name)}",
        host=host,
        port=bound,
        study=name,
        source=redact_url(url),
        artifact_dir=artifact_dir if store is not None else None,
        _serve=serve,
        _close=close,
    )


def start_tensorboard(
    name: str, *, root: Path = Path("studies"), host: str = LOOPBACK, port: int = 6006
) -> RunningServer:
    """Start TensorBoard on ``<root>/<study>/tb`` in a background thread, listening on ``host:port``.

    Raises:
        StudyError: the study has no ``tb/`` folder here.
        ServeError: the port is taken (the message names a free one) or the host cannot be bound.
    """
    from tensorboard import program

    paths = StudyPaths(root, name)
    logdir = paths.tensorboard_dir
    if not logdir.is_dir():
        raise StudyError(
            f"{logdir}: no TensorBoard runs for study {name!r} here; run `hpo run` first, or check --study and --root"
        )
    # Probe the port ourselves: TensorBoard only reports a busy port through its own logger.
    try:
        with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            port = int(probe.getsockname()[1])
    except OSError as exc:
        raise _bind_error(host, port, exc, "--port") from None
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    board = program.TensorBoard()
    # The Python loader: small logs, and no data-server subprocess left behind or notice printed.
    board.configure(logdir=str(logdir), host=host, port=port, reload_interval=5, load_fast="false")
    try:
        board.launch()
    except program.TensorBoardServerException as exc:
        raise ServeError(f"{host}:{port}: TensorBoard cannot start: {exc.msg}; try another --port or --host") from None
    stopped = threading.Event()
    return RunningServer(
        url=f"http://{_url_host(host)}:{port}/#hparams",
        host=host,
        port=port,
        study=name,
        source=str(logdir),
        _serve=stopped.wait,  # the server runs in TensorBoard's daemon thread
        _close=stopped.set,
    )


def _url_host(host: str) -> str:
    """The host to put in a URL: the loopback address for a wildcard bind, brackets around IPv6."""
    if binds_all_interfaces(host):
        return LOOPBACK if _family(host) == socket.AF_INET else "[::1]"
    return f"[{host.strip('[]')}]" if _family(host) == socket.AF_INET6 else host
