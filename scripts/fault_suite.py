#!/usr/bin/env python3
"""Fault suite: the release binary under database faults, as an operator would meet them.

  1. PostgreSQL restarted (`pg_ctl restart -m fast`) twice in the middle of batch ingest from
     16 devices, in several rounds: the server recovers alone, no acknowledged sample is lost, ingest
     works again, and SIGTERM (sent while devices are still sending) stops the server within the
     drain bound, saying in its log what it waited for.
  2. PostgreSQL paused with SIGSTOP for a few seconds: requests fail within their time bound
     instead of piling up, /health/ready is 503 and /health/live 200 meanwhile, and everything
     works again after SIGCONT. Then SIGTERM while it is paused: the drain bound still holds.
  3. SQLite on a small full volume (a tmpfs this script mounts; skipped with a message where
     mounting is impossible): ingest answers 503, /health/ready 503, both recover once space is
     freed, nothing acknowledged is lost and `PRAGMA integrity_check` is ok.

Every server listens on 127.0.0.1 only. PostgreSQL is a throwaway cluster of this suite's own
(scripts/test-postgres.sh), so it can be restarted and paused.

usage: scripts/fault_suite.py --binary .build/release/thermostat [--rounds N] [--keep]
Standard library only; needs the PostgreSQL server binaries (Debian `postgresql`).
"""
import argparse
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
PASSWORD = "Fault-Suite-Passw0rd!"
# Small on purpose: the suite checks that every wait is bounded by these, in seconds.
DATABASE_TIMEOUT = 2
DRAIN = 4
# How long past the drain bound SIGTERM may take before the suite calls it a hang: the
# server's own last-resort exit comes 2 s after the drain bound.
EXIT_SLACK = 4
DEVICES = 16
# A commit caught on a connection the restart closed was the hang: it happened in about one
# round in six. Rounds of two restarts each, each round ending in SIGTERM, catch it reliably.
RESTARTS_PER_ROUND = 2
BATCH = 20


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def process_state(pid):
    """The one-letter state in /proc/PID/stat ("T" once a SIGSTOP has taken effect)."""
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso(millis):
    """ISO 8601 for milliseconds since the epoch, exactly (no float rounding)."""
    whole = datetime.fromtimestamp(millis // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{millis % 1000:03d}Z"


def request(url, method="GET", body=None, headers=None, timeout=30):
    """(status, parsed JSON or None); a refused or reset connection raises OSError."""
    data = None if body is None else json.dumps(body).encode()
    headers = dict(headers or {})
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


class PostgresCluster:
    """A cluster of the suite's own, made by scripts/test-postgres.sh, that it may restart and pause."""

    def __init__(self, directory):
        self.directory = directory
        self.bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]
        self.url = subprocess.run(
            [str(REPOSITORY / "scripts/test-postgres.sh"), "start", str(directory)],
            check=True, capture_output=True, text=True).stdout.strip()

    def as_owner(self, *command):
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(prefix + [str(c) for c in command], check=True, capture_output=True, text=True)

    def restart(self):
        self.as_owner(self.bindir / "pg_ctl", "-D", self.directory / "data", "-l", self.directory / "server.log",
                      "-m", "fast", "-w", "-t", "60", "restart")

    def processes(self):
        """The postmaster and every process it started."""
        postmaster = int((self.directory / "data/postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(entry.name))
        return postmaster, children

    def pause(self):
        """Stops the postmaster first and waits until it is stopped, so that it starts no backend
        after the children are listed (a backend forked for a new connection in between would
        stay running and answer that connection's queries)."""
        postmaster = int((self.directory / "data/postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while process_state(postmaster) != "T":
            if time.monotonic() > deadline:
                raise Failure("the postmaster did not stop within 10 s of SIGSTOP")
            time.sleep(0.001)
        _, children = self.processes()
        for pid in children:
            os.kill(pid, signal.SIGSTOP)

    def resume(self):
        postmaster, children = self.processes()
        for pid in children + [postmaster]:
            os.kill(pid, signal.SIGCONT)

    def fresh_database(self, name):
        admin = self.url
        subprocess.run(["psql", admin, "-qAtc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        return admin.rsplit("/", 1)[0] + f"/{name}?sslmode=disable"

    def stored(self, url, serials):
        """{serial: set of stored timestamps in ms since the epoch}."""
        out = subprocess.run(
            ["psql", url.split("?")[0], "-qAtF", " ", "-c",
             "SELECT device_serial, (extract(epoch FROM ts) * 1000)::bigint FROM telemetry"],
            check=True, capture_output=True, text=True).stdout
        found = {serial: set() for serial in serials}
        for line in out.splitlines():
            serial, millis = line.split()
            found.setdefault(serial, set()).add(int(millis))
        return found

    def stop(self):
        subprocess.run([str(REPOSITORY / "scripts/test-postgres.sh"), "stop", str(self.directory)],
                       capture_output=True)


class Server:
    """`thermostat serve` on a free loopback port, with the suite's short bounds."""

    def __init__(self, binary, database, workdir, name):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        env = dict(os.environ)
        env.update({
            "THERMOSTAT_HOST": "127.0.0.1",
            "THERMOSTAT_BCRYPT_COST": "4",
            "THERMOSTAT_REGISTER_RATE_PER_HOUR": "100000",
            "THERMOSTAT_TELEMETRY_RATE_PER_MINUTE": "10000000",
            "THERMOSTAT_DATABASE_TIMEOUT_SECONDS": str(DATABASE_TIMEOUT),
            "THERMOSTAT_SHUTDOWN_DRAIN_SECONDS": str(DRAIN),
            # Test tiers without device or sample quotas: this suite is about faults, not tiers.
            "THERMOSTAT_POLICIES_DIR": str(REPOSITORY / "Tests" / "Fixtures" / "Policies"),
        })
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [binary, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--database", database],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPOSITORY)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            check(self.process.poll() is None, f"server exited early: {self.log_tail()}")
            try:
                if request(self.url + "/health/live", timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise Failure(f"server did not start: {self.log_tail()}")

    def log(self):
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines=15):
        return "\n".join(self.log().splitlines()[-lines:])

    def terminate(self):
        """Sends SIGTERM; returns the seconds until the process exited, or None after the hang bound."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=DRAIN + EXIT_SLACK)
            return time.monotonic() - started
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Tenant:
    """A signed-up owner with devices, through the JSON API."""

    def __init__(self, server, devices):
        self.server = server
        email = f"fault-{time.monotonic_ns()}@example.com"
        status, body = self.call("POST", "/api/auth/register/",
                                 {"email": email, "password": PASSWORD, "tenant_name": "Faults"}, cookie=None)
        check(status == 201, f"register: {status} {body}")
        self.devices = []
        for index in range(devices):
            serial = f"FS-{time.monotonic_ns() % 10**9}-{index}"
            status, body = self.call("POST", "/api/devices/register/", {"serial": serial})
            check(status == 201, f"device register: {status} {body}")
            self.devices.append((serial, body["api_key"]))

    def call(self, method, path, body=None, cookie=True):
        headers = {"Origin": self.server.url}
        if cookie:
            headers["Cookie"] = self.cookie
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server.url + path, data=data, method=method,
                                     headers={**headers, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                status, raw = response.status, response.read()
                set_cookie = response.headers.get("Set-Cookie")
        except urllib.error.HTTPError as error:
            status, raw, set_cookie = error.code, error.read(), None
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        return status, json.loads(raw) if raw else None


class Devices:
    """One thread per device posting batches until stopped; keeps what was acknowledged."""

    def __init__(self, server, devices, request_timeout=30):
        self.server = server
        self.devices = devices
        self.request_timeout = request_timeout
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.acknowledged = {serial: set() for serial, _ in devices}
        self.statuses = {}
        self.slowest = 0.0
        self.acks = 0
        self.stop = threading.Event()
        # Each device writes its own timestamps, 10 ms apart, from a day ago.
        self.start = int(time.time() * 1000) - 86_400_000
        self.threads = [threading.Thread(target=self.run, args=(index, serial, key), daemon=True)
                        for index, (serial, key) in enumerate(devices)]
        for thread in self.threads:
            thread.start()

    def run(self, index, serial, key):
        step = 0
        while not self.stop.is_set():
            moments = [self.start + 10 * (step * BATCH + n) for n in range(BATCH)]
            step += 1
            samples = [{"device_id": serial, "mode": "AUTO", "temp_inside_c": 20.5, "temp_outside_c": 3,
                        "setpoint_c": 21, "hysteresis_c": 0.5, "output": "OFF", "timestamp": iso(m)}
                       for m in moments]
            began = time.monotonic()
            try:
                status, _ = request(self.server.url + "/api/telemetry/ingest/", "POST", {"samples": samples},
                                    {"Authorization": f"Device {serial}:{key}"}, timeout=self.request_timeout)
            except OSError as error:
                status = type(error).__name__
                if self.server.process.poll() is not None:
                    return
                time.sleep(0.05)  # a refused connection answers at once: do not spin
            took = time.monotonic() - began
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self.slowest = max(self.slowest, took)
                if status == 200:
                    self.acks += 1
                    self.acknowledged[serial].update(moments)
                self.changed.notify_all()

    def count(self):
        with self.lock:
            return self.acks

    def wait_until(self, predicate, timeout, message):
        """Waits until `predicate(self)` holds (checked on every answer) or fails after `timeout` s."""
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self), timeout):
                raise Failure(f"{message} within {timeout} s; statuses {self.statuses}")

    def wait_for(self, acks, timeout, what):
        """Waits until `acks` more requests than now have been acknowledged."""
        target = self.count() + acks
        self.wait_until(lambda d: d.acks >= target, timeout, f"{what}: not {acks} requests acknowledged")

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        check(not any(t.is_alive() for t in self.threads), "a device thread never returned")

    def lost(self, stored):
        return sum(len(acked - stored.get(serial, set())) for serial, acked in self.acknowledged.items())

    def total(self):
        return sum(len(acked) for acked in self.acknowledged.values())


def stop_within_drain(server, what):
    seconds = server.terminate()
    if seconds is None:
        server.kill()
        raise Failure(f"{what}: SIGTERM did not stop the server within {DRAIN + EXIT_SLACK} s "
                      f"(drain {DRAIN} s); log tail:\n{server.log_tail()}")
    log = server.log()
    check("graceful shutdown: draining" in log and "waiting_for" in log,
          f"{what}: the log does not say what shutdown waits for")
    # Status 1 is the server's last resort (work still outstanding after the drain time): that
    # is a hang the bounds should have prevented, so it fails here too.
    check(server.process.returncode == 0 and "graceful shutdown finished" in log,
          f"{what}: exit status {server.process.returncode}; log tail:\n{server.log_tail()}")
    return seconds


def postgres_restart_round(binary, cluster, workdir, round_number):
    database = cluster.fresh_database(f"restart_{round_number}")
    server = Server(binary, database, workdir, f"restart-{round_number}")
    try:
        tenant = Tenant(server, DEVICES)
        devices = Devices(server, tenant.devices)
        devices.wait_for(2 * DEVICES, 30, "ingest before the restart")
        # Each restart is a chance for a commit to be caught on a dying connection.
        for _ in range(RESTARTS_PER_ROUND):
            cluster.restart()
            devices.wait_for(2 * DEVICES, 30, "ingest after the restart")
        seconds = stop_within_drain(server, "SIGTERM after a restart")
        devices.finish()
        lost = devices.lost(cluster.stored(database, [s for s, _ in tenant.devices]))
        check(lost == 0, f"{lost} acknowledged samples missing after the restart")
        return (f"{devices.total()} samples acknowledged, 0 lost, statuses {devices.statuses}, "
                f"stopped {seconds:.1f} s after SIGTERM")
    finally:
        server.kill()


def postgres_pause(binary, cluster, workdir):
    database = cluster.fresh_database("paused")
    server = Server(binary, database, workdir, "paused")
    resumed = False
    try:
        tenant = Tenant(server, 4)
        devices = Devices(server, tenant.devices, request_timeout=60)
        devices.wait_for(8, 30, "ingest before the pause")
        cluster.pause()
        try:
            paused_at = time.monotonic()
            status, body = request(server.url + "/health/live", timeout=5)
            check(status == 200, f"/health/live while paused: {status}")
            began = time.monotonic()
            status, body = request(server.url + "/health/ready", timeout=30)
            took = time.monotonic() - began
            check(status == 503 and body.get("reason") in ("database_unreachable", "commits_failing"),
                  f"/health/ready while paused: {status} {body}")
            check(took < DATABASE_TIMEOUT + 2, f"/health/ready took {took:.1f} s while paused")
            # Requests fail within their bound instead of piling up: while the database is
            # still stopped, every device gets answered (503) twice: its request in flight at
            # the pause and the next one. Requests piled up behind the pause would only be
            # answered after SIGCONT.
            devices.wait_until(lambda d: d.statuses.get(503, 0) >= 2 * len(tenant.devices), 6 * DATABASE_TIMEOUT + 10,
                               "requests are not answered while the database is paused")
            with devices.lock:
                slowest = devices.slowest
                paused_statuses = dict(devices.statuses)
            check(slowest < 3 * DATABASE_TIMEOUT + 2, f"a request waited {slowest:.1f} s on a paused database")
            paused_for = time.monotonic() - paused_at
        finally:
            cluster.resume()
            resumed = True
        devices.wait_for(2 * len(tenant.devices), 30, "ingest after SIGCONT")
        deadline = time.monotonic() + 15
        while request(server.url + "/health/ready", timeout=10)[0] != 200:
            check(time.monotonic() < deadline, "/health/ready not 200 after SIGCONT")
            time.sleep(0.1)
        seconds = stop_within_drain(server, "SIGTERM after a pause")
        devices.finish()
        lost = devices.lost(cluster.stored(database, [s for s, _ in tenant.devices]))
        check(lost == 0, f"{lost} acknowledged samples missing after the pause")
        return (f"paused {paused_for:.1f} s; answered while paused: {paused_statuses}, slowest {slowest:.1f} s "
                f"(bound {DATABASE_TIMEOUT} s); recovered, 0 lost, stopped {seconds:.1f} s after SIGTERM")
    finally:
        if not resumed:
            cluster.resume()
        server.kill()


def sigterm_while_paused(binary, cluster, workdir):
    """SIGTERM while PostgreSQL does not answer: the drain bound still holds."""
    database = cluster.fresh_database("stopped_while_paused")
    server = Server(binary, database, workdir, "sigterm-while-paused")
    resumed = False
    try:
        tenant = Tenant(server, 4)
        devices = Devices(server, tenant.devices, request_timeout=60)
        devices.wait_for(8, 30, "ingest before the pause")
        cluster.pause()
        try:
            seconds = stop_within_drain(server, "SIGTERM while PostgreSQL is paused")
        finally:
            cluster.resume()
            resumed = True
        devices.finish()
        lost = devices.lost(cluster.stored(database, [s for s, _ in tenant.devices]))
        check(lost == 0, f"{lost} acknowledged samples missing")
        return f"stopped {seconds:.1f} s after SIGTERM (drain {DRAIN} s), statuses {devices.statuses}, 0 lost"
    finally:
        if not resumed:
            cluster.resume()
        server.kill()


def sqlite_full_volume(binary, workdir):
    volume = workdir / "small-volume"
    volume.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(volume)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        return None, f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not root'})"
    server = None
    try:
        path = volume / "thermostat.sqlite"
        server = Server(binary, f"sqlite:{path}", workdir, "sqlite-full")
        tenant = Tenant(server, 2)
        devices = Devices(server, tenant.devices)
        devices.wait_for(4, 30, "ingest before the volume is full")
        filler = volume / "filler"
        # Unbuffered writes until the volume refuses one (a buffered file would fail on close).
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)
        # Nothing can be stored now: wait for refusals (every request is answered).
        devices.wait_until(lambda d: d.statuses.get(503, 0) >= 2, 30, "no 503 on a full volume")
        status, body = request(server.url + "/health/ready")
        check(status == 503 and body.get("reason") == "commits_failing",
              f"/health/ready on a full volume: {status} {body}")
        check(request(server.url + "/health/live")[0] == 200, "/health/live on a full volume")
        filler.unlink()
        devices.wait_for(4, 30, "ingest after space was freed")
        # The next commit after one that succeeded may still be in flight; readiness follows
        # the latest outcome, which is a success once the volume has room.
        status, body = request(server.url + "/health/ready")
        check(status == 200, f"/health/ready after space was freed: {status} {body}")
        stop_within_drain(server, "SIGTERM on SQLite")
        devices.finish()
        # closing(): sqlite3's own context manager ends a transaction but leaves the file open,
        # which would keep the volume busy.
        with contextlib.closing(sqlite3.connect(path)) as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
            check(integrity == "ok", f"integrity_check: {integrity}")
            stored = {}
            for serial, ts in db.execute("SELECT device_serial, ts FROM telemetry"):
                stored.setdefault(serial, set()).add(ts // 1000)
        lost = devices.lost(stored)
        check(lost == 0, f"{lost} acknowledged samples missing after the full volume")
        return True, f"statuses {devices.statuses}, 0 lost, integrity ok"
    finally:
        if server:
            server.kill()
        unmounted = subprocess.run(["umount", str(volume)], capture_output=True, text=True)
        if unmounted.returncode != 0:
            # Never leave the mount behind; say why it was busy.
            subprocess.run(["umount", "--lazy", str(volume)], capture_output=True)
            print(f"warning: {volume} was busy at unmount ({unmounted.stderr.strip()}); detached lazily")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.environ.get("THERMOSTAT_BIN", str(REPOSITORY / ".build/release/thermostat")))
    parser.add_argument("--rounds", type=int, default=8, help="PostgreSQL restart rounds (the hang was intermittent)")
    parser.add_argument("--only", choices=["restart", "pause", "sqlite"], action="append")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) even when all pass")
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    check(Path(binary).exists(), f"no binary at {binary}")

    workdir = Path(tempfile.mkdtemp(prefix="thermostat-faults-"))
    os.chmod(workdir, 0o755)
    results = []
    started = time.monotonic()

    def run(name, body):
        began = time.monotonic()
        try:
            outcome = body()
            if isinstance(outcome, tuple) and outcome[0] is None:
                results.append((name, "SKIP", outcome[1], time.monotonic() - began))
            else:
                detail = outcome[1] if isinstance(outcome, tuple) else outcome
                results.append((name, "PASS", detail, time.monotonic() - began))
        except Exception as error:  # a failure in one case must not hide the others
            detail = str(error) if isinstance(error, Failure) else traceback.format_exc()
            results.append((name, "FAIL", detail, time.monotonic() - began))

    cluster = None
    only = set(args.only or ["restart", "pause", "sqlite"])
    try:
        if only & {"restart", "pause"}:
            cluster = PostgresCluster(workdir / "postgres")
        if "restart" in only:
            for number in range(1, args.rounds + 1):
                run(f"PostgreSQL restarted mid-ingest, round {number}",
                    lambda n=number: postgres_restart_round(binary, cluster, workdir, n))
        if "pause" in only:
            run("PostgreSQL paused (SIGSTOP) mid-ingest", lambda: postgres_pause(binary, cluster, workdir))
            run("SIGTERM while PostgreSQL is paused", lambda: sigterm_while_paused(binary, cluster, workdir))
        if "sqlite" in only:
            run("SQLite on a full volume", lambda: sqlite_full_volume(binary, workdir))
    finally:
        if cluster:
            cluster.stop()

    print("\nFault suite (release binary %s)" % binary)
    for name, verdict, detail, seconds in results:
        print(f"  {verdict}  {name} ({seconds:.1f} s)")
        print("        " + detail.replace("\n", "\n        "))
    failed = [r for r in results if r[1] == "FAIL"]
    passed = sum(1 for r in results if r[1] == "PASS")
    skipped = sum(1 for r in results if r[1] == "SKIP")
    print(f"fault suite: {passed} passed, {len(failed)} failed, {skipped} skipped "
          f"in {time.monotonic() - started:.0f} s")
    if failed or args.keep:
        print(f"server logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
