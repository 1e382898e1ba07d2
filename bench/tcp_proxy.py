"""A TCP proxy on 127.0.0.1 that a test controls: it forwards, freezes (every byte held
in both directions and every new connection left hanging: a network partition) or cuts
(every connection closed and new ones refused: a server down or restarted), and it notes
the first bytes of what clients send (HTTP request lines, for attributing writes)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``upstream`` until :meth:`close`."""

    upstream: tuple[str, int]
    #: (time, first bytes) of every chunk a client sent
    sent: list[tuple[float, bytes]] = field(default_factory=list)
    _flowing: threading.Event = field(default_factory=threading.Event)
    _closed: threading.Event = field(default_factory=threading.Event)
    _refusing: threading.Event = field(default_factory=threading.Event)
    _sockets: list[socket.socket] = field(default_factory=list)
    _listener: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self._flowing.set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def freeze(self) -> None:
        """Hold every byte from now on, both ways (connections stay open)."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward again what was held and what comes."""
        self._flowing.set()

    def cut(self) -> None:
        """Close every connection and refuse new ones until :meth:`restore`."""
        self._refusing.set()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self._sockets.clear()

    def restore(self) -> None:
        self._refusing.clear()

    def requests_after(self, since: float) -> list[bytes]:
        """The first bytes of what clients sent after ``since`` (epoch seconds)."""
        return [head for at, head in list(self.sent) if at > since]

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refusing.is_set():
                client.close()
                continue
            self._flowing.wait()  # a connection made during a partition hangs until it heals
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, note: bool) -> None:
        try:
            while not self._closed.is_set():
                if not self._flowing.is_set():
                    self._flowing.wait(0.2)
                    continue
                readable, _, _ = select.select([source], [], [], 0.2)
                if not readable or not self._flowing.is_set():
                    continue
                data = source.recv(65536)
                if not data:
                    break
                if note:
                    self.sent.append((time.time(), data[:120]))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()
