"""Kernels for the pipeline's workers: preloaded, forked, and dying with their parent.

A fresh IPython kernel spends most of a short notebook's fixed cost starting
Python and importing what the notebooks use (numpy, pandas, scipy,
statsmodels, matplotlib, seaborn, IPython and this package): over a second
of CPU per notebook, paid 453 times for 150 LAs. So, where the platform can
fork and has Unix sockets (:mod:`isafe_helpers.portable`), the run keeps one
*preloader*, shared by its workers: a process started once, the way a
kernel is started (``python -m`` with the kernel's environment and working
folder, the working folder taken off ``sys.path`` as ``ipykernel_launcher``
does), which imports those modules and waits on a Unix socket in a private
folder (:func:`serve`).

Only public APIs reach it. A worker's kernel manager (nbclient's
``kernel_manager_class``) has a kernel spec manager whose ``python3`` spec
starts :mod:`isafe_helpers.run.kernel_launcher` where it would start
``ipykernel_launcher``, with the same arguments; jupyter_client launches,
signals, waits for and kills that launcher as it would any kernel. The
launcher asks the preloader for a kernel; the preloader forks a child that
becomes the kernel exactly as ``ipykernel_launcher`` starts one (same
arguments, environment, working folder, new session), and the launcher
stands for it until it ends (passing on interrupts, ending with its exit
code; killed, its kernel is killed). papermill and nbclient drive the kernel
over the usual connection file, and the notebook's imports find their
modules already loaded.

What the preloader must not do before forking, it does not do: it never
loads the inline matplotlib backend (which wires itself into IPython only
when it is first loaded inside a running kernel; the preloader sets
``MPLBACKEND`` as the kernel would, so pyplot picks the same backend later),
and it starts no thread and no ZeroMQ context. ``tests/test_pipeline_kernels.py``
runs the notebooks both ways and compares every output byte; set
``ISAFE_FRESH_KERNELS=1`` to start a fresh kernel for every notebook instead
(and ``ISAFE_PORTABLE=1`` to force every portable fallback, which includes
fresh kernels). A preloader that cannot start, or dies, also means fresh
kernels: slower, never different.

Every process dies with its parent (:func:`isafe_helpers.portable.die_with_parent`:
Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, elsewhere a watchdog that polls
the parent): a worker and the preloader with the run, a launcher with its
worker, a kernel with the preloader and with its launcher (fresh kernels
stop themselves when their worker goes, through ipykernel's parent poller).
Killing the run with ``kill -9`` leaves nothing running, and the next run
starts clean (and removes the socket folders the killed run left in the
temporary folder: :func:`socket_folder`).
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from isafe_helpers import portable
from isafe_helpers.run.kernel_launcher import PRELOADER_ENV, recv, send

#: Set to 1 to start a fresh kernel for every notebook (no preloader).
FRESH_ENV = "ISAFE_FRESH_KERNELS"

#: What the notebooks import (their first cell), and what that pulls in.
PRELOAD = (
    "isafe_helpers.impact",
    "isafe_helpers.process",
    "isafe_helpers.cost",
    "isafe_helpers.publish.figures",
    "isafe_helpers.publish.report",
    "isafe_helpers.publish.prose",
    "ipykernel.kernelapp",
)

#: The kernel sets this before a notebook can import matplotlib (IPKernelApp.init_gui_pylab).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


# --------------------------------------------------------------------------
# The preloader (a process of its own) and the kernels it forks
# --------------------------------------------------------------------------
def _kernel(sockets: list[socket.socket], argv: list[str], env: dict[str, str], cwd: str) -> None:
    """In the forked child: become the kernel, as ``python -m ipykernel_launcher <argv>`` would."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for sock in sockets:  # the preloader's: its listening socket, wake-up pair and launchers' connections
            sock.close()
        portable.die_with_parent(int(env.get("JPY_PARENT_PID") or os.getppid()))
        os.setsid()  # as jupyter_client's launch_kernel (start_new_session)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        import ipykernel_launcher
        from ipykernel import kernelapp

        sys.argv = [ipykernel_launcher.__file__, *argv]
        kernelapp.launch_new_instance(argv=argv)
    finally:
        os._exit(0)


def preloader_main(fd: int, parent_pid: int) -> None:
    """The preloader: import :data:`PRELOAD`, then fork a kernel for each launcher that connects to socket ``fd``.

    Each launcher (:mod:`isafe_helpers.run.kernel_launcher`) connects once,
    is told the preloader is ready (or why it could not start), sends its
    kernel's arguments, environment and working folder, and is sent the
    kernel's process id, then its exit code when it ends. A launcher that
    closes its connection first has been killed: its kernel is killed too.
    The preloader ends with the run (its parent), or when the run stops it.
    """
    import selectors

    portable.die_with_parent(parent_pid, thread=False)  # no thread in a process that forks
    parent_alive = None if portable.has_pdeathsig() else portable.parent_watch(parent_pid)
    listener = socket.socket(fileno=fd)
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]  # as ipykernel_launcher does; IPKernelApp puts it back
    # Read at import time (IPKernelApp.parent_handle): the kernels' parent is this process.
    os.environ["JPY_PARENT_PID"] = str(os.getpid())
    ready: dict = {"pid": os.getpid()}
    try:
        own_backend = "MPLBACKEND" not in os.environ
        os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
        for name in PRELOAD:
            importlib.import_module(name)
        if "matplotlib_inline.backend_inline" in sys.modules:
            raise RuntimeError("the inline matplotlib backend was loaded outside a kernel")
        if own_backend:
            del os.environ["MPLBACKEND"]  # each kernel gets the environment it is given
    except BaseException as exc:  # noqa: BLE001 - reported to the launchers, which start fresh kernels
        ready = {"error": f"{type(exc).__name__}: {exc}"}
    # A kernel's end wakes the loop: SIGCHLD writes to a socket pair the selector watches.
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    launchers: dict[socket.socket, int | None] = {}  # a launcher's connection -> its kernel's process id
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)

    def drop(conn: socket.socket) -> None:
        sel.unregister(conn)
        launchers.pop(conn, None)
        conn.close()

    while True:
        events = sel.select(None if parent_alive is None else portable.WATCH_INTERVAL)
        if parent_alive is not None and not parent_alive():
            os._exit(1)  # the run has ended; each kernel watches this process and ends too
        for key, _ in events:
            conn = key.fileobj
            if conn is listener:
                new, _ = listener.accept()
                new.setblocking(True)
                send(new, ready)
                if "error" in ready:
                    new.close()
                    continue
                launchers[new] = None
                sel.register(new, selectors.EVENT_READ)
            elif conn is wake_r:
                try:
                    while wake_r.recv(4096):
                        pass
                except BlockingIOError:
                    pass
                _reap_kernels(launchers, drop)
            else:
                assert isinstance(conn, socket.socket)
                try:
                    req = recv(conn)
                except (EOFError, OSError):  # the launcher has ended (killed): so does its kernel
                    if (pid := launchers.get(conn)) is not None:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                    drop(conn)
                    continue
                if launchers.get(conn) is not None:
                    continue  # one kernel a connection
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    env = dict(req["env"])
                    env["JPY_PARENT_PID"] = str(os.getppid())
                    _kernel([listener, wake_r, wake_w, *launchers], req["argv"], env, req["cwd"])
                launchers[conn] = pid
                try:
                    send(conn, {"pid": pid})
                except OSError:
                    pass  # the launcher has gone: the next select sees it


def _reap_kernels(launchers: dict[socket.socket, int | None], drop) -> None:
    """Reap every kernel that has ended; tell its launcher the exit code."""
    by_pid = {pid: conn for conn, pid in launchers.items() if pid is not None}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = by_pid.get(pid)
        if conn is not None:
            code = os.waitstatus_to_exitcode(status)
            try:
                send(conn, {"exit": code if code >= 0 else 1})
            except OSError:
                pass
            drop(conn)


def socket_folder(kind: str) -> str:
    """A new private folder for this process's sockets: ``<tmp>/<kind>-<pid>-<random>``.

    Short (a socket's path has at most 107 bytes). Folders of the same kind
    left by processes of this user that no longer run (a run killed with
    ``kill -9`` cannot remove its own) are removed first; a folder whose
    process still runs, or that is not this user's, is left alone.
    """
    import tempfile

    import psutil

    base = tempfile.gettempdir()
    base = base if len(base) < 60 else "/tmp"
    for old in Path(base).glob(f"{kind}-*-*"):
        pid = old.name[len(kind) + 1 :].split("-", 1)[0]
        try:
            mine = old.is_dir() and not old.is_symlink() and old.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{kind}-{os.getpid()}-", dir=base)


class Server:
    """The run's preloader process and the socket its workers' kernel launchers connect to (started by :func:`serve`)."""

    def __init__(self, proc: subprocess.Popen, folder: str):
        self.proc = proc
        self.folder = folder
        self.path = os.path.join(folder, "preloader")

    def stop(self) -> None:
        """End the preloader (and so any kernel it forked that is still running) and remove its socket."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def serve(cwd: str | Path, env: dict[str, str]) -> Server | None:
    """Start the run's preloader; None for fresh kernels.

    None when ``ISAFE_FRESH_KERNELS`` is set, when the platform cannot fork
    or has no Unix sockets (or ``ISAFE_PORTABLE=1`` says to act as if), or
    when the preloader cannot start.

    It is started the way a kernel is (``python -m`` with the kernels'
    environment and working folder), listening on a Unix socket in a
    private folder; it imports in the background while the run goes on.
    """
    import atexit

    if os.environ.get(FRESH_ENV, "") not in ("", "0"):
        return None
    if not (portable.can_fork() and portable.has_unix_sockets()):
        return None  # fresh kernels: no fork to make kernels from (Windows, or ISAFE_PORTABLE=1)
    folder = socket_folder("isafe-preloader")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(os.path.join(folder, "preloader"))
        listener.listen(64)
        proc = subprocess.Popen(
            [sys.executable, "-m", "isafe_helpers.run.kernels", str(listener.fileno()), str(os.getpid())],
            pass_fds=(listener.fileno(),),
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # as a worker's kernels: their chatter stays out of the terminal
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    finally:
        listener.close()  # the preloader holds it
    server = Server(proc, folder)
    atexit.register(server.stop)
    return server


# --------------------------------------------------------------------------
# jupyter_client's side: a kernel spec that starts kernels through the preloader
# --------------------------------------------------------------------------
@functools.cache
def _ipc_dir() -> str:
    """This worker's folder for its kernels' sockets (private, short: a socket's path has at most 107 bytes)."""
    from multiprocessing.util import Finalize

    folder = socket_folder("isafe-kernels")
    Finalize(None, shutil.rmtree, args=(folder, True), exitpriority=10)  # also at a pool worker's end
    return folder


def use_preloader(path: str | None) -> None:
    """In a worker: start this process's kernels through the run's preloader at ``path`` (None: fresh kernels)."""
    if path:
        os.environ[PRELOADER_ENV] = path  # the kernels' launchers inherit it
    else:
        os.environ.pop(PRELOADER_ENV, None)


@functools.cache
def _manager_class():
    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    class PromptKernelClient(AsyncKernelClient):
        """jupyter_client's client, ready as soon as its kernel answers (public client API only).

        jupyter_client's ``wait_for_ready`` ends by waiting until IOPub has
        been silent for 0.2 s, only to discard the status messages of its
        own ``kernel_info`` requests: a fifth of a second of idle core per
        notebook. This one takes what is already there and goes on. Outputs
        are unchanged: nbclient takes from IOPub only the messages whose
        parent is the request it sent (``tests/test_pipeline_kernels.py``
        compares notebooks run this way and by fresh kernels).
        """

        async def wait_for_ready(self, timeout: float | None = None) -> None:
            from queue import Empty

            from jupyter_client import protocol_version_info

            deadline = time.time() + (float("inf") if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    msg = await self.shell_channel.get_msg(timeout=1)
                except Empty:
                    pass
                else:
                    if msg["msg_type"] == "kernel_info_reply":
                        try:  # IOPub is connected when the request's status arrives there
                            await self.iopub_channel.get_msg(timeout=0.2)
                        except Empty:
                            pass
                        else:  # the protocol version to speak, as jupyter_client's own client sets it
                            major = int(msg["content"]["protocol_version"].split(".")[0])
                            if major != protocol_version_info[0]:
                                self.session.adapt_version = major
                            break
                if not await self.is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.time() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
            while True:  # discard what IOPub holds now, without waiting for more
                try:
                    await self.iopub_channel.get_msg(timeout=0)
                except Empty:
                    break

    class PreloadedSpecManager(KernelSpecManager):
        """The installed kernel specs, with ``ipykernel_launcher`` started through the preloader's launcher."""

        def get_kernel_spec(self, kernel_name: str):
            spec = super().get_kernel_spec(kernel_name)
            if os.environ.get(PRELOADER_ENV) and "ipykernel_launcher" in spec.argv:
                spec.argv = [LAUNCHER if a == "ipykernel_launcher" else a for a in spec.argv]
            return spec

    class PreloadedKernelManager(AsyncKernelManager):
        """nbclient's kernel manager, with kernels started through the preloader, and prompt clients.

        Only public extension points: the kernel spec manager and the
        client class (traitlets defaults), the transport setting. Its
        kernels listen on Unix sockets in a folder of the worker's own
        (:func:`_ipc_dir`), not on TCP ports: jupyter_client picks a TCP port
        by binding it and letting it go, and another process may take it
        before the kernel binds it, so the kernel dies before it starts
        (seen in the test suite, once in a few hundred kernels, when kernels
        start close together). A socket file no other process knows of
        cannot be taken.
        """

        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _preloaded_ip_default(self) -> str:
            return os.path.join(_ipc_dir(), "k") if self.transport == "ipc" else "127.0.0.1"

        @default("kernel_spec_manager")
        def _preloaded_spec_manager_default(self):
            return PreloadedSpecManager(data_dir=self.data_dir)

        @default("client_factory")
        def _client_factory_default(self):
            return PromptKernelClient

    return PreloadedKernelManager


#: What the kernel spec runs instead of ``ipykernel_launcher`` when there is a preloader.
LAUNCHER = "isafe_helpers.run.kernel_launcher"


def kernel_manager_class():
    """The kernel manager class for nbclient (``kernel_manager_class=``): preloaded kernels when available."""
    if not os.environ.get(PRELOADER_ENV):
        from jupyter_client.manager import AsyncKernelManager

        return AsyncKernelManager
    return _manager_class()


if __name__ == "__main__":
    preloader_main(int(sys.argv[1]), int(sys.argv[2]))
