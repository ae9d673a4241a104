"""The README's promise on where the server listens: with no API keys every caller is one tenant,
so `fanout serve` listens on loopback only; asked for any other address without keys it refuses
to start and names the variable to set. With keys, any address is served.

Nothing here connects to a non-loopback address. The refusals happen before anything binds; the
one server that does listen on 0.0.0.0 runs in a network namespace of its own (`unshare -n`),
where the only interface is its own loopback, and is called over that loopback from inside.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.harness import Process
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
# Well past a clean start-up; a server that did start would be stopped here.
DEADLINE = 60
# Well past a refusal (about a second): a server started instead is stopped after this.
REFUSAL_DEADLINE = 20
KEY = "k-0123456789abcdef"
# In a namespace of its own the server is alone: any port is free there.
NAMESPACE_PORT = 8000


def environment(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**clean, "PYTHONPATH": os.pathsep.join(path), "FANOUT_WORKERS": "0", **env}


def serve_args(data_dir: Path, host: str, port: int) -> list[str]:
    args = ["serve", "--host", host, "--port", str(port), "--data-dir", str(data_dir)]
    return [sys.executable, "-m", "fanout", *args]


def refused(tmp_path: Path, host: str, **env: str) -> str:
    """Run `fanout serve` on `host`; it must exit 2 with one error line, having opened nothing."""
    run = subprocess.run(
        serve_args(tmp_path / "data", host, 8000),
        env=environment(**env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=REFUSAL_DEADLINE,
    )
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert not (tmp_path / "data").exists(), "the store was opened before the address was checked"
    return line


@pytest.mark.parametrize(
    ("host", "env"),
    [
        ("::", {}),
        ("fanout.example", {}),  # a name other than localhost may resolve anywhere
        ("0.0.0.0", {"FANOUT_API_KEYS": ","}),  # a list of keys that holds none
        ("0.0.0.0", {"FANOUT_API_KEYS": ":tenant-a"}),  # an empty key never matches
    ],
    ids=["any-ipv6", "a-name", "no-key-listed", "an-empty-key"],
)
def test_without_api_keys_a_non_loopback_address_is_refused_naming_the_variable(
    tmp_path: Path, host: str, env: dict[str, str]
) -> None:
    line = refused(tmp_path, host, **env)

    assert line == (
        f"fanout: error: refusing to listen on {host} without API keys: set"
        " FANOUT_API_KEYS=<key>:<tenant>[,...] (clients then send `Authorization: Bearer"
        " <key>`), or listen on 127.0.0.1"
    )


def test_the_address_from_the_environment_is_held_to_the_same_rule(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "fanout", "serve", "--data-dir", str(tmp_path / "data")],
        env=environment(FANOUT_HOST="0.0.0.0"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=REFUSAL_DEADLINE,
    )

    assert run.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in run.stderr
    assert not (tmp_path / "data").exists()


def stop(server: subprocess.Popen[bytes]) -> int:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
    try:
        return server.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise


# 127.0.0.1 is every end-to-end test's address.
@pytest.mark.parametrize("host", ["127.0.0.2", "localhost", "::1"])
def test_without_api_keys_a_loopback_address_is_served(tmp_path: Path, host: str) -> None:
    port_file = tmp_path / "port"
    args = ["serve", "--host", host, "--port", "0", "--port-file", str(port_file)]
    args += ["--data-dir", str(tmp_path / "data")]
    server = Process("fanout serve", args, environment(), tmp_path / "serve.log")
    try:
        address = f"[{host}]" if ":" in host else host
        url = f"http://{address}:{server.bound_port(port_file)}"
        with httpx.Client(base_url=url, timeout=10) as client:

            def answers() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(answers, DEADLINE, f"fanout serve on {host} to answer")
            assert client.get("/jobs").status_code == 200  # no key asked for: one tenant
    finally:
        code = server.stop()
    assert code == 0
    assert "listens on loopback only" in server.output()


def test_with_api_keys_any_address_is_served_and_asks_for_a_key(tmp_path: Path) -> None:
    """`fanout serve --host 0.0.0.0` with keys, in a network namespace of its own (see
    `inside_a_namespace`): it starts, listens on every address, and serves only a caller with
    a key."""
    run = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.cli.test_bind_loopback", str(tmp_path)],
        env=environment(FANOUT_API_KEYS=f"{KEY}:tenant-a"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=2 * DEADLINE,
    )
    assert run.returncode == 0, run.stderr + (tmp_path / "serve.log").read_text()

    seen = json.loads(run.stdout)
    assert seen["listening"] == [["0.0.0.0", NAMESPACE_PORT]]
    assert seen["status"] == {"healthz": 200, "no key": 401, "key": 200}
    assert seen["exit"] == 0
    assert "listens on loopback only" not in (tmp_path / "serve.log").read_text()


# -- inside the namespace ----------------------------------------------------------------------

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """A new network namespace's loopback interface starts down (netdevice(7): SIOCSIFFLAGS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        _, flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def listening(pid: int) -> list[list[object]]:
    return [
        [c.laddr.ip, c.laddr.port]
        for c in psutil.Process(pid).net_connections("tcp")
        if c.status == psutil.CONN_LISTEN
    ]


def inside_a_namespace(tmp_path: Path) -> None:
    """Start `fanout serve --host 0.0.0.0`, call it over the namespace's loopback, stop it, and
    print what was seen as JSON."""
    loopback_up()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            serve_args(tmp_path / "data", "0.0.0.0", NAMESPACE_PORT),
            env=os.environ,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    seen: dict[str, object] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{NAMESPACE_PORT}", timeout=10) as client:
            deadline = time.monotonic() + DEADLINE
            while server.poll() is None and time.monotonic() < deadline:
                try:
                    healthz = client.get("/healthz").status_code
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            else:
                raise SystemExit(f"fanout serve did not answer: {log.read_text()}")
            seen["listening"] = listening(server.pid)
            auth = {"authorization": f"Bearer {KEY}"}
            seen["status"] = {
                "healthz": healthz,
                "no key": client.get("/jobs").status_code,
                "key": client.get("/jobs", headers=auth).status_code,
            }
    finally:
        seen["exit"] = stop(server)
    print(json.dumps(seen))


if __name__ == "__main__":
    inside_a_namespace(Path(sys.argv[1]))
