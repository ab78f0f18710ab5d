"""Kernels for the pipeline's workers: preloaded, forked, and dying with their parent.

A fresh IPython kernel spends most of a short notebook's fixed cost starting
Python and importing what the notebooks use (numpy, pandas, scipy,
statsmodels, matplotlib, seaborn, IPython and this package): over a second
of CPU per notebook, paid 453 times for 150 LAs. So the run keeps one
*preloader*, shared by its workers: a process started once, the way a
kernel is started (``python -m`` with the kernel's environment and working
folder, the working folder taken off ``sys.path`` as ``ipykernel_launcher``
does), which imports those modules and waits for its workers on a Unix
socket in a private folder (:func:`serve`). For each notebook it forks a child that becomes the
kernel exactly as ``ipykernel_launcher`` starts one (same arguments,
environment, working folder, new session); papermill and nbclient drive it
over the usual connection file. The notebook's imports then find their
modules already loaded.

What the preloader must not do before forking, it does not do: it never
loads the inline matplotlib backend (which wires itself into IPython only
when it is first loaded inside a running kernel; the preloader sets
``MPLBACKEND`` as the kernel would, so pyplot picks the same backend later),
and it starts no thread and no ZeroMQ context. ``tests/test_pipeline_kernels.py``
runs the notebooks both ways and compares every output byte; set
``ISAFE_FRESH_KERNELS=1`` to start a fresh kernel for every notebook instead.
A preloader that cannot start, or dies, also means fresh kernels: slower,
never different.

Every process dies with its parent (Linux ``prctl(PR_SET_PDEATHSIG,
SIGKILL)``, set in the child and checked against a parent that died first):
a worker and the preloader with the run, a kernel with the preloader
(fresh kernels stop themselves when their worker goes, through ipykernel's
parent poller). Killing the run with ``kill -9`` leaves nothing running,
and the next run starts clean (and removes the socket folders the killed
run left in the temporary folder: :func:`socket_folder`).
"""

from __future__ import annotations

import functools
import importlib
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

from isafe_helpers import portable

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
# Messages between a worker and its preloader: length-prefixed pickles
# --------------------------------------------------------------------------
def _send(sock: socket.socket, obj) -> None:
    data = pickle.dumps(obj)
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv(sock: socket.socket):
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


# --------------------------------------------------------------------------
# The preloader (a process of its own) and the kernels it forks
# --------------------------------------------------------------------------
def _reap(signum, frame) -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _kernel(sockets: list[socket.socket], argv: list[str], env: dict[str, str], cwd: str) -> None:
    """In the forked child: become the kernel, as ``python -m ipykernel_launcher <argv>`` would."""
    try:
        for sock in sockets:  # the preloader's: the listening socket and its workers' connections
            sock.close()
        portable.die_with_parent(int(env.get("JPY_PARENT_PID") or os.getppid()))
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
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
    """The preloader: import :data:`PRELOAD`, then serve the run's workers on the listening socket ``fd``.

    Each worker connects once and is told the preloader is ready (or why it
    could not start); then each of its requests forks one kernel. The
    preloader ends with the run (its parent), or when the run stops it.
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
    except BaseException as exc:  # noqa: BLE001 - reported to the workers, which start fresh kernels
        ready = {"error": f"{type(exc).__name__}: {exc}"}
    signal.signal(signal.SIGCHLD, _reap)
    workers: list[socket.socket] = []
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    while True:
        events = sel.select(None if parent_alive is None else portable.WATCH_INTERVAL)
        if parent_alive is not None and not parent_alive():
            os._exit(1)  # the run has ended; each kernel watches this process and ends too
        for key, _ in events:
            if key.fileobj is listener:
                conn, _ = listener.accept()
                _send(conn, ready)
                if "error" in ready:
                    conn.close()
                    continue
                workers.append(conn)
                sel.register(conn, selectors.EVENT_READ, conn)
                continue
            conn = key.data  # the worker's socket (registered as the key's data)
            try:
                req = _recv(conn)
            except (EOFError, OSError):  # the worker has ended
                sel.unregister(conn)
                workers.remove(conn)
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                sel.close()
                env = dict(req["env"])
                env["JPY_PARENT_PID"] = str(os.getppid())
                _kernel([listener, *workers], req["argv"], env, req["cwd"])
            _send(conn, {"pid": pid})


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
    """The run's preloader process and the socket its workers connect to (started by :func:`serve`)."""

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
    """Start the run's preloader, unless ``ISAFE_FRESH_KERNELS`` is set; None when it cannot start.

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


class Preloader:
    """A worker's connection to the run's preloader."""

    def __init__(self, path: str, timeout: float = 300, meanwhile=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.ok = True
        try:
            self.sock.connect(path)
            if meanwhile is not None:  # the worker's own work while the preloader imports
                meanwhile()
            reply = _recv(self.sock)
        except BaseException:
            self.sock.close()
            raise
        if "error" in reply:
            self.close()
            raise RuntimeError(f"the kernel preloader did not start: {reply['error']}")

    def fork_kernel(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        """Fork a kernel running ``ipykernel_launcher <argv>``; return its process id."""
        try:
            _send(self.sock, {"argv": list(argv), "env": dict(env), "cwd": str(cwd)})
            return int(_recv(self.sock)["pid"])
        except (OSError, EOFError):
            self.ok = False  # the preloader has gone: fresh kernels from now on
            raise

    def alive(self) -> bool:
        return self.ok

    def close(self) -> None:
        self.ok = False
        self.sock.close()


# --------------------------------------------------------------------------
# jupyter_client's side: a kernel manager whose kernels come from the preloader
# --------------------------------------------------------------------------
class _Forked:
    """The little of :class:`subprocess.Popen` that jupyter_client uses, for a kernel another process forked."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        import psutil

        self.pid = pid
        self.returncode: int | None = None
        try:
            self._proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            self._proc = None
            self.returncode = 0

    def poll(self) -> int | None:
        import psutil

        if self.returncode is None:
            try:
                gone = not self._proc.is_running() or self._proc.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            if gone:
                self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired("kernel", timeout or 0.0)
            time.sleep(0.02)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


#: The worker's connection to the run's preloader, when it has one (set by :func:`connect_preloader`).
_PRELOADER: Preloader | None = None


def connect_preloader(path: str | None, meanwhile=None) -> Preloader | None:
    """Connect this worker to the run's preloader at ``path`` (from :func:`serve`); None when there is none.

    ``meanwhile`` is called while the preloader imports (whether or not it then starts).
    """
    global _PRELOADER
    if not path:
        if meanwhile is not None:
            meanwhile()
        return None
    try:
        _PRELOADER = Preloader(path, meanwhile=meanwhile)
    except (RuntimeError, OSError, EOFError):
        _PRELOADER = None
        return None
    # A pool's worker ends with os._exit, skipping atexit: multiprocessing's finalizers still run.
    from multiprocessing.util import Finalize

    Finalize(_PRELOADER, _PRELOADER.close, exitpriority=10)
    return _PRELOADER


@functools.cache
def _ipc_dir() -> str:
    """This worker's folder for its kernels' sockets (private, short: a socket's path has at most 107 bytes)."""
    from multiprocessing.util import Finalize

    folder = socket_folder("isafe-kernels")
    Finalize(None, shutil.rmtree, args=(folder, True), exitpriority=10)  # also at a pool worker's end
    return folder


@functools.cache
def _manager_class():
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.provisioning import LocalProvisioner
    from traitlets import CaselessStrEnum, default

    class PromptKernelClient(AsyncKernelClient):
        """jupyter_client's client, ready as soon as its kernel answers.

        jupyter_client's ``wait_for_ready`` ends by waiting until IOPub has
        been silent for 0.2 s, only to discard the status messages of its
        own ``kernel_info`` requests: a fifth of a second of idle core per
        notebook. This one takes what is already there and goes on. Outputs
        are unchanged: nbclient takes from IOPub only the messages whose
        parent is the request it sent (``tests/test_pipeline_kernels.py``
        compares notebooks run this way and by fresh kernels).
        """

        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.time() + (float("inf") if timeout is None else timeout)
            while True:  # as jupyter_client's, for a client its kernel manager made
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
                        else:
                            self._handle_kernel_info_reply(msg)
                            break
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.time() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
            while True:  # discard what IOPub holds now, without waiting for more
                try:
                    await self.iopub_channel.get_msg(timeout=0)
                except Empty:
                    break

    class PreloadedProvisioner(LocalProvisioner):
        """Launch the kernel by forking the worker's preloader; a fresh kernel if that fails."""

        async def launch_kernel(self, cmd: list[str], **kwargs):
            pre = _PRELOADER
            if pre is not None and "ipykernel_launcher" in cmd and pre.alive():
                try:
                    cwd = kwargs.get("cwd") or os.getcwd()
                    pid = pre.fork_kernel(cmd[cmd.index("ipykernel_launcher") + 1 :], kwargs["env"], cwd)
                except (OSError, EOFError, KeyError):
                    pid = None
                if pid:
                    self.process = _Forked(pid)  # type: ignore[assignment]  # Popen's interface, not its class
                    self.pid, self.pgid = pid, None  # signal the kernel alone, never the preloader's group
                    self.cwd = cwd
                    return self.connection_info
            return await super().launch_kernel(cmd, **kwargs)

    class PreloadedKernelManager(AsyncKernelManager):
        """nbclient's kernel manager, with kernels forked from the worker's preloader, and prompt clients.

        Its kernels listen on Unix sockets in a folder of the worker's own
        (:func:`_ipc_dir`), not on TCP ports: jupyter_client picks a TCP port
        by binding it and letting it go, and another process may take it
        before the kernel binds it, so the kernel dies before it starts
        (seen in the test suite, once in a few hundred kernels, when kernels
        start close together). A socket file no other process knows of
        cannot be taken.
        """

        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        def _ip_default(self) -> str:
            return os.path.join(_ipc_dir(), "k") if self.transport == "ipc" else super()._ip_default()

        @default("client_factory")
        def _client_factory_default(self):
            return PromptKernelClient

        async def _async_pre_start_kernel(self, **kw):
            if self.provisioner is None:
                self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
                self.provisioner = PreloadedProvisioner(
                    kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
                )
            return await super()._async_pre_start_kernel(**kw)

    return PreloadedKernelManager


def kernel_manager_class():
    """The kernel manager class for nbclient (``kernel_manager_class=``): preloaded kernels when available."""
    if _PRELOADER is None:
        from jupyter_client.manager import AsyncKernelManager

        return AsyncKernelManager
    return _manager_class()


if __name__ == "__main__":
    preloader_main(int(sys.argv[1]), int(sys.argv[2]))
