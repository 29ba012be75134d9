"""Running the emulator on real sockets: in a background thread for tests and demos, or blocking.

:func:`run_emulator` serves one engine on 127.0.0.1 (a free port by default), optionally over
TLS, and optionally with the queue and run roles each at the root of their own listener (what
the official fal-client needs: it takes a bare host for those roles and hard-codes https).
:func:`serve` does the same in the foreground until a signal (``falkit emulator [--tls]``), with
every listener on one uvicorn server that picks the app by the port a request arrived on.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from falkit.config import EMULATOR_KEY
from falkit.emulator.app import Role, create_app
from falkit.emulator.config import EmulatorConfig, Stats
from falkit.emulator.engine import Engine
from falkit.emulator.faults import TRANSPORT_KEY, FaultSet

if TYPE_CHECKING:
    from falkit.config import Settings

SslFiles = tuple[str | Path, str | Path]
START_TIMEOUT = 15.0
KEEP_ALIVE = 60
"""Seconds an idle keep-alive connection stays open (uvicorn's 5 s default makes clients that
poll thousands of jobs race the server's close on reused connections)."""


@functools.cache
def protocol_class() -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, handing each connection's transport to the app (drop faults)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DroppableH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.app_state = {**self.app_state, TRANSPORT_KEY: transport}

    return DroppableH11Protocol


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be TCP so asyncio sets TCP_NODELAY on accepted connections (else Nagle plus
    # delayed ACKs add ~40 ms to every response whose headers and body are written apart)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class EmulatorServer:
    """A running emulator; use as ``with run_emulator() as emu`` or ``async with``."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        ssl: SslFiles | None = None,
        split_roles: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.engine = Engine(self.config)
        self.app = create_app(engine=self.engine)
        self.base_url = ""
        """``http(s)://127.0.0.1:PORT``: every role under /queue, /run, /rest, /cdn."""
        self.queue_host: str | None = None
        """With split_roles: ``127.0.0.1:PORT`` serving the queue role at its root."""
        self.run_host: str | None = None
        """With split_roles: ``127.0.0.1:PORT`` serving the run role at its root."""
        self._ssl, self._split, self._host, self._port = ssl, split_roles, host, port
        self._servers: list[Any] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None

    # ---- what tests use ----

    @property
    def stats(self) -> Stats:
        return self.engine.stats

    @property
    def faults(self) -> FaultSet:
        return self.engine.faults

    @property
    def scheme(self) -> str:
        return "https" if self._ssl else "http"

    @property
    def queue_url(self) -> str:
        return f"{self.scheme}://{self.queue_host}" if self.queue_host else f"{self.base_url}/queue"

    @property
    def run_url(self) -> str:
        return f"{self.scheme}://{self.run_host}" if self.run_host else f"{self.base_url}/run"

    @property
    def rest_url(self) -> str:
        return f"{self.base_url}/rest"

    @property
    def cdn_url(self) -> str:
        return f"{self.base_url}/cdn"

    def settings(self, api_key: str = EMULATOR_KEY) -> Settings:
        """falkit settings pointing all four roles at this emulator, with ``api_key``."""
        from pydantic import SecretStr

        from falkit.config import load_settings

        return load_settings().with_urls(self.base_url, api_key=SecretStr(api_key))

    # ---- lifecycle ----

    def _uvicorn_config(self, app: Any) -> Any:
        import uvicorn

        certfile, keyfile = self._ssl if self._ssl else (None, None)
        return uvicorn.Config(
            app,
            http=protocol_class(),
            ws="none",
            lifespan="off",
            log_config=None,
            log_level=None,
            access_log=False,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=KEEP_ALIVE,
        )

    def start(self) -> EmulatorServer:
        """Bind, start serving in a daemon thread, and return once every listener is up."""
        import uvicorn

        roles: list[Role | None] = [None, "queue", "run"] if self._split else [None]
        apps = [self.app, *(create_app(engine=self.engine, root_role=r) for r in roles[1:])]
        sockets = [_bind(self._host, self._port if i == 0 else 0) for i in range(len(apps))]
        hosts = [f"{self._host}:{sock.getsockname()[1]}" for sock in sockets]
        self.base_url = f"{self.scheme}://{hosts[0]}"
        if self._split:
            self.queue_host, self.run_host = hosts[1], hosts[2]
        self.engine.public_base = self.base_url
        self._servers = [uvicorn.Server(self._uvicorn_config(app)) for app in apps]
        self._thread = threading.Thread(
            target=self._serve, args=(sockets,), daemon=True, name="falkit-emulator"
        )
        self._thread.start()
        self._wait_started()
        return self

    def _serve(self, sockets: list[socket.socket]) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            pairs = zip(self._servers, sockets, strict=True)
            await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in pairs))

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start() or stop()
            self._error = exc

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(server.started for server in self._servers):
            alive = self._thread is not None and self._thread.is_alive()
            if not alive or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"emulator failed to start: {self._error!r}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop jobs and listeners; wait for the thread to end."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self.engine.aclose(), loop)
            with contextlib.suppress(Exception):  # shutting down anyway
                future.result(timeout=5)
        for server in self._servers:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmulatorServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


def run_emulator(
    config: EmulatorConfig | None = None,
    *,
    ssl: SslFiles | None = None,
    split_roles: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
) -> EmulatorServer:
    """An emulator to serve in a background thread while the ``with`` block runs.

    ``ssl=(certfile, keyfile)`` serves https. ``split_roles=True`` adds two listeners serving
    the queue and run roles at their root (``emu.queue_host`` / ``emu.run_host``), for clients
    like fal-client that take bare hosts; rest and cdn stay under ``emu.base_url``.
    """
    return EmulatorServer(config, ssl=ssl, split_roles=split_roles, host=host, port=port)


def url_host(host: str) -> str:
    """How a client reaches a listener bound to ``host`` (wildcards become loopback)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging, everything on stderr (stdout stays free for ``--env`` lines)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config["loggers"]["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    return config


@dataclass(frozen=True)
class Listening:
    """Where a served emulator answers (what ``serve``'s ``on_ready`` is given)."""

    base_url: str
    """``http(s)://HOST:PORT``: every role under /queue, /run, /rest, /cdn (and /_emulator)."""
    queue_host: str | None = None
    """With split roles: ``HOST:PORT`` serving the queue role at its root (FAL_QUEUE_RUN_HOST)."""
    run_host: str | None = None
    """With split roles: ``HOST:PORT`` serving the run role at its root (FAL_RUN_HOST)."""


class _ByPort:
    """An ASGI app picking one app per local port, so one uvicorn server serves every listener
    (one signal handler, one graceful shutdown)."""

    def __init__(self, default: Any, by_port: dict[int, Any]) -> None:
        self._default, self._by_port = default, by_port

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        server = scope.get("server")
        app = self._by_port.get(server[1], self._default) if server else self._default
        await app(scope, receive, send)


class ListenError(OSError):
    """A port could not be bound; ``address`` is the ``host:port`` that failed."""

    def __init__(self, address: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.address = address


def _bind_all(host: str, ports: list[int]) -> list[socket.socket]:
    """Bind every port, or none (ListenError names the one that failed)."""
    sockets: list[socket.socket] = []
    for port in ports:
        try:
            sockets.append(_bind(host, port))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            raise ListenError(f"{host}:{port}", exc) from exc
    return sockets


def _listen(
    engine: Engine, host: str, port: int, *, tls: bool, split_roles: bool
) -> tuple[Any, list[socket.socket], Listening]:
    """The app, bound sockets and URLs for ``serve``: with split roles the queue and run roles
    get the next two ports (free ones when ``port`` is 0), and files are served from the main
    listener."""
    sockets = _bind_all(host, [port + i if port else 0 for i in range(3 if split_roles else 1)])
    hosts = [f"{url_host(host)}:{sock.getsockname()[1]}" for sock in sockets]
    scheme = "https" if tls else "http"
    app = create_app(engine=engine)
    if not split_roles:
        return app, sockets, Listening(f"{scheme}://{hosts[0]}")
    listening = Listening(f"{scheme}://{hosts[0]}", queue_host=hosts[1], run_host=hosts[2])
    engine.public_base = listening.base_url
    by_port = {
        sockets[1].getsockname()[1]: create_app(engine=engine, root_role="queue"),
        sockets[2].getsockname()[1]: create_app(engine=engine, root_role="run"),
    }
    return _ByPort(app, by_port), sockets, listening


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    config: EmulatorConfig | None = None,
    *,
    on_ready: Callable[[Listening], None] | None = None,
    access_log: bool = False,
    ssl: SslFiles | None = None,
    split_roles: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM (``falkit emulator``).

    ``port=0`` picks a free port. ``ssl=(certfile, keyfile)`` serves https. ``split_roles``
    adds the queue and run roles at the root of their own listeners (``port + 1`` and
    ``port + 2``, or free ports), for fal-client; files are then served from the main listener,
    otherwise URLs follow each request's Host. ``on_ready(listening)`` is called once every
    listener accepts connections. On shutdown the engine stops its jobs first, so open SSE
    status streams end instead of holding the graceful shutdown open. Logs go to stderr; the
    access log only with ``access_log``.
    """
    import uvicorn

    engine = Engine(config)
    app, sockets, listening = _listen(
        engine, host, port, tls=ssl is not None, split_roles=split_roles
    )

    class EmulatorUvicorn(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await engine.aclose()
            await super().shutdown(sockets)

    certfile, keyfile = ssl if ssl else (None, None)
    server = EmulatorUvicorn(
        uvicorn.Config(
            app,
            http=protocol_class(),
            ws="none",
            lifespan="off",
            log_config=_log_config(access_log),
            log_level="info" if access_log else "warning",
            access_log=access_log,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=KEEP_ALIVE,
            backlog=4096,
        )
    )

    async def main() -> None:
        serving = asyncio.ensure_future(server.serve(sockets=sockets))
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started and not serving.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(listening)
        await serving

    try:
        asyncio.run(main())
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it shut down for
        pass
    finally:
        for sock in sockets:
            sock.close()
