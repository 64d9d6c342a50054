"""A TCP forwarder on loopback that can be cut silently: a partition without root.

While cut, nothing passes in either direction and no connection is closed (no FIN, no
RST), as when a cable is pulled: each side's connections stay open and simply go quiet.
New connections are accepted and left silent too.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class SilentProxy:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.open = threading.Event()
        self.open.set()
        self.closed = threading.Event()
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.open.clear()

    def heal(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.closed.set()
        self.open.set()
        for sock in [self.listener, *self._socks]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._socks.append(client)
            threading.Thread(target=self._pair, args=(client,), daemon=True).start()

    def _pair(self, client: socket.socket) -> None:
        self.open.wait()
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        self._socks.append(upstream)
        ends = {client: upstream, upstream: client}
        while not self.closed.is_set():
            self.open.wait()
            try:
                ready, _, _ = select.select(list(ends), [], [], 0.2)
                for sock in ready:
                    if not self.open.is_set():
                        break  # cut while waiting: the data stays where it is
                    data = sock.recv(65536)
                    if not data:
                        raise OSError("closed")
                    ends[sock].sendall(data)
            except OSError:
                for sock in ends:
                    with contextlib.suppress(OSError):
                        sock.close()
                return
