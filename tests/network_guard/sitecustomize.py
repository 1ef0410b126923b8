"""Loaded by every Python process started with this folder on PYTHONPATH (Ray workers too):
refuses every connection and name lookup beyond this machine's loopback, and appends each
attempt to the file named by FEDNUCLEI_NETWORK_LOG."""

import ipaddress
import os
import socket
import traceback

_LOG = os.environ.get("FEDNUCLEI_NETWORK_LOG")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _local(host) -> bool:
    if host is None or isinstance(host, bytes) and not host:
        return True
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host in _LOCAL_NAMES or host == "":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _record(what: str) -> None:
    with open(_LOG, "a") as log:
        log.write(f"{what} from pid {os.getpid()} ({' '.join(_command())[:200]}):\n"
                  f"{''.join(traceback.format_stack()[-25:-2])}\n")


def _command() -> list[str]:
    try:
        with open(f"/proc/{os.getpid()}/cmdline", "rb") as cmdline:
            return cmdline.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def _guard_connect(original, refused):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _record(f"connect {address}")
            return refused()
        return original(self, address)
    return connect


def _refuse():
    raise ConnectionRefusedError("network guard: only loopback connections are allowed")


if _LOG:
    _getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if not _local(host):
            _record(f"lookup {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, "network guard: no name lookups beyond this machine")
        return _getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = _guard_connect(socket.socket.connect, _refuse)
    socket.socket.connect_ex = _guard_connect(socket.socket.connect_ex, lambda: 111)
