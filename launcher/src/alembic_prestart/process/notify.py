"""systemd's sd_notify protocol, with the standard library only.

With NOTIFY_SOCKET set (a path, or an abstract name starting with @), the launcher reports
STATUS= through its phases and STOPPING=1 when a signal stops it. READY=1 must wait until
uvicorn actually answers on its port, long after this process has become uvicorn; so just
before the exec, a small watcher process is forked off (twice, so that init reaps it). It
sends READY=1 once an HTTP request to the port gets a response, then STOPPING=1 when the
port stops answering or the server process ends. Without NOTIFY_SOCKET nothing is sent and
nothing is forked.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket

NOTIFY_SOCKET = "NOTIFY_SOCKET"
READY_POLL_SECONDS = 0.02
STOP_POLL_SECONDS = 0.25


class Notifier:
    def __init__(self, address: str | None) -> None:
        # An abstract socket name is written with a leading @ and means a leading NUL byte.
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None

    @classmethod
    def from_environment(cls) -> Notifier:
        return cls(os.environ.get(NOTIFY_SOCKET))

    def send(self, *assignments: str) -> None:
        """Send one datagram, e.g. send("READY=1", "STATUS=serving"); never raises."""
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(assignments).encode(), self.address)
        except OSError:
            pass  # the manager went away: notification is best effort, serving is not

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def start_readiness_watcher(self, host: str, port: int, main_pid: int, path: str = "/") -> None:
        """Fork the watcher that reports READY=1 and STOPPING=1 for the exec'd server."""
        if self.address is None:
            return
        first_child = os.fork()
        if first_child != 0:
            os.waitpid(first_child, 0)  # it exits at once; reap it before the exec
            return
        # First child: fork again and exit, so the watcher is adopted (and reaped) by init or
        # the service manager, never left a zombie under uvicorn, which does not reap it.
        try:
            if os.fork() == 0:
                _watch(self, host, port, main_pid, path)
        finally:
            os._exit(0)


def _watch(notifier: Notifier, host: str, port: int, main_pid: int, path: str) -> None:
    # Its command line is still the launcher's; a name of its own tells it apart in ps/top.
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write("sd-notify-watch")
    try:
        pidfd = os.pidfd_open(main_pid)
    except OSError:
        return
    target = _connect_address(host, port)
    while not _server_gone(pidfd, READY_POLL_SECONDS):
        if _answers_http(target, path):
            notifier.send("READY=1", f"MAINPID={main_pid}", f"STATUS=serving on {host}:{port}")
            break
    else:
        return
    # uvicorn closes its listening socket as soon as it starts shutting down.
    while not _server_gone(pidfd, STOP_POLL_SECONDS) and _accepts(target):
        pass
    notifier.send("STOPPING=1", "STATUS=shutting down")
    os.close(pidfd)


def _connect_address(host: str, port: int) -> tuple[str, int]:
    # A wildcard bind is reached through loopback.
    if host in ("", "0.0.0.0"):
        return ("127.0.0.1", port)
    if host == "::":
        return ("::1", port)
    return (host, port)


def _server_gone(pidfd: int, timeout: float) -> bool:
    readable, _, _ = select.select([pidfd], [], [], timeout)
    return bool(readable)


def _accepts(target: tuple[str, int]) -> bool:
    """False only once the port refuses: a slow or full accept queue is not a shutdown."""
    try:
        with socket.create_connection(target, timeout=1):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:
        return True


def _answers_http(target: tuple[str, int], path: str) -> bool:
    """True once a worker answers a request (any status): an open port alone may only be the
    backlog. The standard library's HTTP client asks for `path` (--ready-path: a route the app
    has, so the access log shows a 200, not a 404)."""
    import http.client

    connection = http.client.HTTPConnection(target[0], target[1], timeout=2)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        connection.getresponse()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
