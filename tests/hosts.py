"""The project's own test hosts: network namespaces joined by a bridge (ip netns + veth), and TCP forwarders that
make the machine's PostgreSQL and MariaDB reachable on the bridge address — so that a worker in a namespace
reaches the Prefect server and the databases only over its veth, as a worker on another machine would.

Needs root (CAP_NET_ADMIN) and iproute2; ``available()`` says whether this machine can."""

from __future__ import annotations

import os
import random
import selectors
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def available() -> str | None:
    """None if namespaces can be made here; otherwise why not."""
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    name = f"ecmprobe{os.getpid() % 100000}"
    r = _ip("netns", "add", name)
    if r.returncode != 0:
        return f"`ip netns add` refused: {r.stderr.strip()}"
    _ip("netns", "del", name)
    return None


@dataclass
class Hosts:
    """A bridge on this machine (``gateway``) and one namespace per host name, each with one veth on the bridge."""

    names: list[str]
    tag: str = field(default_factory=lambda: f"{os.getpid() % 10000}{random.randint(0, 99)}")
    subnet: int = field(default_factory=lambda: random.randint(10, 250))
    addresses: dict[str, str] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"ecmbr{self.tag}"[:15]

    @property
    def gateway(self) -> str:
        return f"10.213.{self.subnet}.1"

    def __enter__(self) -> Hosts:
        try:
            self._must("link", "add", self.bridge, "type", "bridge")
            self._must("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            self._must("link", "set", self.bridge, "up")
            for i, name in enumerate(self.names, start=2):
                ns, host_end, ns_end = f"ecm{self.tag}{name}"[:30], f"ve{self.tag}h{i}"[:15], f"ve{self.tag}n{i}"[:15]
                self._must("netns", "add", ns)
                self.namespaces[name] = ns
                self._must("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
                self._must("link", "set", host_end, "master", self.bridge)
                self._must("link", "set", host_end, "up")
                self._must("link", "set", ns_end, "netns", ns)
                addr = f"10.213.{self.subnet}.{i}"
                self._must("-n", ns, "addr", "add", f"{addr}/24", "dev", ns_end)
                self._must("-n", ns, "link", "set", ns_end, "up")
                self._must("-n", ns, "link", "set", "lo", "up")
                self.addresses[name] = addr
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for name in list(self.namespaces):
            self.kill(name)
            _ip("netns", "del", self.namespaces.pop(name))
        _ip("link", "del", self.bridge)

    def _must(self, *args: str) -> None:
        r = _ip(*args)
        if r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")

    def popen(self, name: str, cmd: list[str], **kw: object) -> subprocess.Popen[bytes]:
        """Start a process on host ``name`` (in its namespace); the environment is passed as it is."""
        return subprocess.Popen(["ip", "netns", "exec", self.namespaces[name], *cmd], **kw)  # type: ignore[call-overload]

    def pids(self, name: str) -> list[int]:
        r = _ip("netns", "pids", self.namespaces[name])
        return [int(p) for p in r.stdout.split()]

    def host_of(self, pid: int) -> str | None:
        r = _ip("netns", "identify", str(pid))
        ns = r.stdout.strip()
        return next((n for n, v in self.namespaces.items() if v == ns), None)

    def kill(self, name: str) -> list[int]:
        """The host goes down: every process in its namespace gets SIGKILL."""
        pids = self.pids(name)
        for p in pids:
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        return pids


class Forwarder:
    """Listen on ``listen`` and pass every connection through to ``target`` (a database seen from the bridge)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.create_server(listen, reuse_port=False)
        self.sock.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"forward-{listen[1]}")

    def __enter__(self) -> Forwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            threading.Thread(target=_pipe, args=(client, upstream, self._stop), daemon=True).start()


def _pipe(a: socket.socket, b: socket.socket, stop: threading.Event) -> None:
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while not stop.is_set():
            for key, _ in sel.select(timeout=0.5):
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        sel.close()
        a.close()
        b.close()
