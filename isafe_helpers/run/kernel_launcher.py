"""A preloaded kernel's stand-in for jupyter_client: ``python -m isafe_helpers.run.kernel_launcher <kernel args>``.

When the run has a kernel preloader (:mod:`isafe_helpers.run.kernels`), the
kernel spec its workers use starts this module where it would start
``ipykernel_launcher``, with the same arguments (so jupyter_client launches,
signals, waits for and kills it through its own public machinery). It asks
the preloader (its socket is named by :data:`PRELOADER_ENV`) to fork a
kernel with those arguments, this process's environment and working folder,
then stands for that kernel until it ends:

- it passes on the interrupt and terminate signals jupyter_client sends it;
- it ends with the kernel's exit code when the preloader reports the end;
- killed (as by an immediate shutdown) or orphaned (its worker gone), it
  closes its connection, and the preloader kills the kernel at once.

Without a preloader to answer, it becomes a fresh kernel itself (``exec`` of
``python -m ipykernel_launcher`` with the same arguments, in this process):
slower, never different. Light to import: the standard library, and
:mod:`isafe_helpers.portable`.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import struct
import sys

#: The environment variable naming the preloader's socket (set in the workers, so their kernels inherit it).
PRELOADER_ENV = "ISAFE_PRELOADER"


def send(sock: socket.socket, obj) -> None:
    """Send ``obj`` as a length-prefixed pickle."""
    data = pickle.dumps(obj)
    sock.sendall(struct.pack("!I", len(data)) + data)


def recv(sock: socket.socket):
    """Receive what :func:`send` sent; :class:`EOFError` when the other end has closed."""

    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("the other end closed the connection")
            buf += chunk
        return buf

    (size,) = struct.unpack("!I", exactly(4))
    return pickle.loads(exactly(size))


def _fork_kernel(path: str, argv: list[str]) -> tuple[socket.socket, int] | None:
    """Ask the preloader at ``path`` for a kernel; its connection and process id, or None when it cannot."""
    sock = socket.socket(getattr(socket, "AF_UNIX"), socket.SOCK_STREAM)  # noqa: B009 - POSIX only: checked by the caller
    try:
        sock.settimeout(300)  # the preloader answers once it has imported the notebooks' libraries
        sock.connect(path)
        if "error" in recv(sock):
            raise EOFError("the preloader did not start")
        send(sock, {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()})
        pid = int(recv(sock)["pid"])
        sock.settimeout(None)
        return sock, pid
    except (OSError, EOFError, KeyError, ValueError):
        sock.close()
        return None


def main(argv: list[str]) -> int:
    """Stand for a kernel forked by the preloader, or become a fresh kernel."""
    path = os.environ.get(PRELOADER_ENV, "")
    got = _fork_kernel(path, argv) if path and hasattr(socket, "AF_UNIX") else None
    if got is None:  # a fresh kernel, in this very process
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *argv])
    sock, pid = got

    from isafe_helpers import portable

    portable.die_with_parent(os.getppid())  # the worker; the preloader kills the kernel when this ends

    def relay(signum, frame) -> None:
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, relay)
    try:
        return int(recv(sock).get("exit", 0))
    except (EOFError, OSError):
        return 1  # the preloader has gone, and its kernels with it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
