"""The client commands (`fanout submit`, `jobs`, `status`, `watch`, `results`, `cancel`) as real
processes against the real `fanout serve`; the progress bar in a real terminal (tmux)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.contract.support import in_ci
from tests.e2e.harness import Launcher, Server
from tests.waiting import wait_until


def cli(
    server: Server | None, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
    if server is not None:
        environment["FANOUT_URL"] = server.url
    environment.update(env or {}, COLUMNS="120")
    return subprocess.run(
        [sys.executable, "-m", "fanout", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_submit_wait_results_and_listing_from_files_and_stdin(
    fanout: Launcher, tmp_path: Path
) -> None:
    server = fanout.serve()
    (tmp_path / "items.csv").write_text("sensor,value\na,1\nb,2\n")
    csv = cli(server, "submit", "echo", str(tmp_path / "items.csv"), "--wait")
    assert csv.returncode == 0, csv.stderr
    job_id = csv.stdout.strip()
    assert f"job {job_id} succeeded: 2 succeeded, 0 failed of 2" in csv.stderr

    out = tmp_path / "out.jsonl"
    written = cli(server, "results", job_id, "-o", str(out))
    assert written.returncode == 0, written.stderr
    assert [json.loads(line)["output"] for line in out.read_text().splitlines()] == [
        {"sensor": "a", "value": "1"},
        {"sensor": "b", "value": "2"},
    ]

    lines = "\n".join(str(i) for i in range(30))
    piped = cli(
        server, "submit", "pause_then_triple", "-", "-p", "pause=0.001", "--json", stdin=lines
    )
    assert piped.returncode == 0, piped.stderr
    job = json.loads(piped.stdout)
    assert (job["params"], job["counts"]["total"]) == ({"pause": 0.001}, 30)
    server.wait_for_job(job["id"], 30)
    printed = cli(server, "results", job["id"])
    assert [json.loads(line)["output"] for line in printed.stdout.splitlines()] == [
        3 * i for i in range(30)
    ]

    array = cli(server, "submit", "echo", "-", "--json", stdin="\n  [5, 6]")
    assert json.loads(array.stdout)["counts"]["total"] == 2, array.stderr

    listed = cli(server, "jobs")
    assert listed.returncode == 0
    assert listed.stdout.index(job["id"]) < listed.stdout.index(job_id), "newest first"
    newest = json.loads(cli(server, "jobs", "--json", "--limit", "1").stdout)["items"][0]
    assert newest["id"] == json.loads(array.stdout)["id"]
    status = cli(server, "status", job_id)
    assert f"job {job_id} succeeded" in status.stdout


def test_a_failed_job_exits_1_a_redrive_fixes_it_and_refused_requests_exit_2(
    fanout: Launcher, tmp_path: Path
) -> None:
    server = fanout.serve(env={"FANOUT_API_KEYS": "key-a:tenant-a"})
    key = {"FANOUT_API_KEY": "key-a"}
    (tmp_path / "runs").touch()
    (tmp_path / "items.json").write_text("[1, 2, 3]")
    failing = cli(
        server,
        "submit",
        "fail_until_fixed",
        str(tmp_path / "items.json"),
        "--param",
        f"dir={tmp_path}",
        "--param",
        "fail=[2]",
        "--wait",
        env=key,
    )
    assert failing.returncode == 1, failing.stderr
    assert "failed: 2 succeeded, 1 failed of 3" in failing.stderr

    (tmp_path / "fixed").touch()
    redriven = cli(server, "redrive", failing.stdout.strip(), "--wait", env=key)
    assert redriven.returncode == 0, redriven.stderr
    assert "succeeded: 3 succeeded, 0 failed of 3" in redriven.stderr
    again = cli(server, "redrive", failing.stdout.strip(), env=key)
    assert again.returncode == 2 and "409 Nothing to redrive" in again.stderr

    unknown = cli(server, "submit", "no_such_task", str(tmp_path / "items.json"), env=key)
    assert unknown.returncode == 2
    assert "422" in unknown.stderr and "task: no task named 'no_such_task'" in unknown.stderr
    assert cli(server, "jobs").returncode == 2  # no key: 401
    assert "401" in cli(server, "jobs").stderr
    ended = cli(server, "cancel", failing.stdout.strip(), env=key)
    assert ended.returncode == 2 and "409" in ended.stderr
    bad_file = cli(server, "submit", "echo", str(tmp_path / "missing.json"), env=key)
    assert bad_file.returncode == 2 and "cannot read" in bad_file.stderr
    unreachable = cli(None, "jobs", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr


def test_cancel_and_watch_a_running_job(fanout: Launcher, tmp_path: Path) -> None:
    server = fanout.serve()
    body = {"task": "gated", "items": list(range(10)), "params": {"dir": str(tmp_path)}}
    job = server.submit({**body, "chunk_size": 1})
    cancelled = cli(server, "cancel", job["id"])
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"job {job['id']} cancelled" in cancelled.stdout
    watched = cli(server, "watch", job["id"])
    assert watched.returncode == 1 and "cancelled" in watched.stderr
    (tmp_path / "go").touch()


@pytest.mark.skipif(shutil.which("tmux") is None and not in_ci(), reason="tmux is not installed")
def test_the_progress_bar_in_a_terminal_shows_counts_rate_and_eta_then_the_outcome(
    fanout: Launcher, tmp_path: Path
) -> None:
    server = fanout.serve()
    session = f"fanout-{os.getpid()}"
    env = f"FANOUT_URL={server.url}"
    (tmp_path / "items.json").write_text(json.dumps(list(range(20))))
    # The terminal's own size decides the bar's width, not a COLUMNS inherited from the runner.
    command = (
        f"unset COLUMNS LINES; {env} {sys.executable} -m fanout submit gated"
        f" {tmp_path / 'items.json'} --chunk-size 1 -p dir={tmp_path} -p gate_at=10 --wait;"
        " echo exit=$?; sleep 60"
    )
    tmux = ["tmux", "-L", session]
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "120", "-y", "8", command],
                   check=True, cwd=tmp_path, timeout=30)  # fmt: skip
    try:

        def showing(text: str) -> Callable[[], str | None]:
            def screen() -> str | None:
                captured = subprocess.run(
                    [*tmux, "capture-pane", "-p", "-t", session],
                    capture_output=True,
                    text=True,
                    timeout=30,
                ).stdout
                (tmp_path / "screen.txt").write_text(captured)  # the last one, if this fails
                return captured if text in captured else None

            return screen

        running = wait_until(showing("10/20"), 60, "10 of 20 done", every=0.1)
        (tmp_path / "running.txt").write_text(running)
        assert "running" in running and "0 failed" in running
        assert "items/s" in running and "ETA" in running and "━" in running
        (tmp_path / "go").touch()
        ended = wait_until(showing("exit="), 60, "the command to end", every=0.1)
        (tmp_path / "ended.txt").write_text(ended)
        assert "succeeded: 20 succeeded, 0 failed of 20" in ended
        assert "exit=0" in ended
    finally:
        subprocess.run([*tmux, "kill-server"], timeout=30)
