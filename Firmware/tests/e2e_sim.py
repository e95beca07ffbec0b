#!/usr/bin/env python3
"""End-to-end check: thermostat-sim against the real platform server.

Starts `$THERMOSTAT_BIN serve` on a free loopback port with a throwaway SQLite
database, registers a user and devices through the JSON API, runs the simulator
and reads the stored telemetry back through /api/telemetry/query/:

  1. an outage in the middle: every sample arrives exactly once, oldest first;
  2. a failed heater in a cold outside: the inside temperature keeps falling;
  3. thermostats without an outdoor sensor: every sample is stored, with a null
     outside temperature, and heating still follows the inside temperature;
  4. a revoked key: the simulator stops and reports needs_reprovisioning;
  5. a low per-device rate limit (server restarted with
     THERMOSTAT_TELEMETRY_RATE_PER_MINUTE): the simulator backs off on 429 and
     still delivers everything.

usage: THERMOSTAT_BIN=.build/release/thermostat tests/e2e_sim.py [--sim build/thermostat-sim]
Standard library only.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

PASSWORD = "Sim-e2e-Passw0rd!"
QUERY_PAGE = 25
LOW_RATE_PER_MINUTE = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def epoch(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def iso(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Server:
    """The platform server as a child process with its own database directory."""

    def __init__(self, binary, workdir, rate_per_minute=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        # The repository's test tiers: no quotas, and the server's own rate (set below) applies.
        env["THERMOSTAT_POLICIES_DIR"] = str(Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "Policies")
        if rate_per_minute is not None:
            env["THERMOSTAT_TELEMETRY_RATE_PER_MINUTE"] = str(rate_per_minute)
        self.log_path = workdir / f"server-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--port", str(self.port),
             "--database", f"sqlite:{workdir}/db.sqlite"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.wait_healthy()

    def wait_healthy(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early, see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/health/", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server not healthy after {timeout} s, see {self.log_path}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Session:
    """JSON API client holding the session cookie; sends Origin = the base URL."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.cookies = {}

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Origin": self.base_url, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                status, raw, set_cookies = (response.status, response.read(),
                                            response.headers.get_all("Set-Cookie") or [])
        except urllib.error.HTTPError as error:
            status, raw, set_cookies = error.code, error.read(), []
        for cookie in set_cookies:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        return status, json.loads(raw) if raw else None

    def expect(self, status, method, path, body=None):
        """Sends a request and returns its JSON; `status` is one code or a tuple of codes."""
        got, payload = self.request(method, path, body)
        if got not in (status if isinstance(status, tuple) else (status,)):
            raise RuntimeError(f"{method} {path}: expected {status}, got {got}: {payload}")
        return payload

    def rebase(self, base_url):
        self.base_url = base_url

    def samples(self, serial, first, last):
        """Every stored sample of `serial` with first <= timestamp <= last, following `next`."""
        query = (f"/api/telemetry/query/?device={quote(serial)}&from={quote(iso(first))}"
                 f"&to={quote(iso(last + 1))}&limit={QUERY_PAGE}")
        page = self.expect(200, "GET", query)
        found = list(page["samples"])
        while page.get("next"):
            page = self.expect(200, "GET", query + "&after=" + quote(str(page["next"])))
            found.extend(page["samples"])
        return [s for s in found if first <= epoch(s["timestamp"]) <= last]


class E2E:
    def __init__(self, sim, workdir):
        self.sim = sim
        self.workdir = workdir
        self.failures = 0
        self.session = None
        self.base_url = None

    def expect(self, condition, message):
        print(("ok    " if condition else "FAIL  ") + message, flush=True)
        self.failures += 0 if condition else 1

    def register_user(self, email):
        self.session.expect(201, "POST", "/api/auth/register/",
                            {"email": email, "password": PASSWORD,
                             "tenant_name": "Simulator e2e"})

    def register_devices(self, prefix, count):
        """Registers devices; the file lists even ones as 'serial key', odd ones by their URI."""
        lines, serials = [], []
        for i in range(count):
            serial = f"{prefix}-{i}"
            created = self.session.expect(201, "POST", "/api/devices/register/",
                                          {"serial": serial, "name": f"{prefix} room {i}"})
            lines.append(created["provisioning_uri"] if i % 2 else f"{serial} {created['api_key']}")
            serials.append(serial)
        path = self.workdir / f"{prefix}.txt"
        path.write_text("\n".join(lines) + "\n")
        return path, serials

    def run_sim(self, credentials, *args):
        report = self.workdir / "report.json"
        report.unlink(missing_ok=True)
        command = [self.sim, "--url", self.base_url, "--credentials", str(credentials),
                   "--report", str(report), *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        print(done.stdout, end="")
        print(done.stderr, end="", file=sys.stderr)
        devices = json.loads(report.read_text())["devices"] if report.exists() else []
        return done.returncode, {d["serial"]: d for d in devices}

    def exactly_once(self, serial, device, count, interval):
        first, last = epoch(device["first_timestamp"]), epoch(device["last_timestamp"])
        stamps = [epoch(s["timestamp"]) for s in self.session.samples(serial, first, last)]
        expected = list(range(first, last + 1, interval))
        self.expect(len(expected) == count and stamps == expected,
                    f"{serial}: {count} samples stored exactly once, in order (got {len(stamps)})")

    def outage(self):
        path, serials = self.register_devices("e2e-outage", 3)
        code, report = self.run_sim(path, "--samples", 40, "--interval", 60,
                                    "--outage", "10:25", "--batch", 8)
        self.expect(code == 0, f"outage run exits 0 (got {code})")
        for serial in serials:
            device = report.get(serial, {})
            self.expect(device.get("state") == "ok" and device.get("dropped") == 0,
                        f"{serial}: report state ok, nothing dropped")
            if device:
                self.exactly_once(serial, device, 40, 60)

    def heater_failure(self):
        path, (serial,) = self.register_devices("e2e-cold", 1)
        code, report = self.run_sim(path, "--samples", 30, "--heater-failure", "--mode", "HEAT",
                                    "--outside-temp", -10)
        self.expect(code == 0, f"heater failure run exits 0 (got {code})")
        device = report.get(serial)
        if device:
            samples = self.session.samples(serial, epoch(device["first_timestamp"]),
                                           epoch(device["last_timestamp"]))
            temps = [s["temp_inside_c"] for s in samples]
            self.expect(len(temps) == 30 and all(b < a for a, b in zip(temps, temps[1:])),
                        f"{serial}: inside temperature falls {temps[:1]} -> {temps[-1:]}")
            self.expect(all(s["output"] == "HEAT_ON" for s in samples),
                        f"{serial}: heater commanded on throughout")
            self.expect(all(s["temp_outside_c"] == -10 for s in samples),
                        f"{serial}: outside temperature -10 in every sample")

    def no_outside_sensor(self):
        path, serials = self.register_devices("e2e-no-outdoor", 2)
        code, report = self.run_sim(path, "--samples", 20, "--no-outside-sensor", "--mode", "HEAT",
                                    "--setpoint", 22, "--outage", "5:9", "--batch", 4)
        self.expect(code == 0, f"run without outdoor sensors exits 0 (got {code})")
        for serial in serials:
            device = report.get(serial)
            if not device:
                self.expect(False, f"{serial}: in the report")
                continue
            self.exactly_once(serial, device, 20, 60)
            samples = self.session.samples(serial, epoch(device["first_timestamp"]),
                                           epoch(device["last_timestamp"]))
            self.expect(len(samples) == 20
                        and all("temp_outside_c" in s and s["temp_outside_c"] is None
                                for s in samples),
                        f"{serial}: temp_outside_c is null in all {len(samples)} stored samples")
            self.expect(all(isinstance(s["temp_inside_c"], (int, float)) for s in samples)
                        and any(s["output"] == "HEAT_ON" for s in samples),
                        f"{serial}: inside temperature present, heating ran without outdoor sensor")

    def revoked(self):
        path, (serial,) = self.register_devices("e2e-revoked", 1)
        code, _ = self.run_sim(path, "--samples", 5)
        self.expect(code == 0, f"{serial}: delivers before revocation (got {code})")
        now = int(time.time())
        before = len(self.session.samples(serial, now - 3600, now + 60))
        self.session.expect((200, 204), "POST", f"/api/devices/{quote(serial)}/revoke/", {})
        time.sleep(1)  # the next run's timestamps must not coincide with the first run's
        code, report = self.run_sim(path, "--samples", 5)
        device = report.get(serial, {})
        self.expect(code == 3, f"run after revocation exits 3 (got {code})")
        self.expect(device.get("state") == "needs_reprovisioning"
                    and device.get("requests") == 1 and device.get("acknowledged") == 0,
                    f"{serial}: one 401, then stopped with needs_reprovisioning")
        after = len(self.session.samples(serial, now - 3600, now + 60))
        self.expect(before == 5 and after == 5,
                    f"{serial}: nothing stored after revocation ({before} -> {after})")

    def rate_limited(self, credentials, serial):
        code, report = self.run_sim(credentials, "--samples", 12, "--batch", 3,
                                    "--drain-timeout", 600)
        device = report.get(serial, {})
        self.expect(code == 0, f"rate-limited run exits 0 (got {code})")
        self.expect(device.get("rate_limited", 0) >= 1,
                    f"{serial}: got 429 and backed off ({device.get('rate_limited')} times)")
        if device:
            self.exactly_once(serial, device, 12, 60)


def scenarios(e2e, binary, workdir):
    email = f"sim-{os.getpid()}@example.com"
    server = Server(binary, workdir)
    try:
        e2e.base_url = server.url
        e2e.session = Session(server.url)
        e2e.register_user(email)
        e2e.outage()
        e2e.heater_failure()
        e2e.no_outside_sensor()
        e2e.revoked()
        limited, (limited_serial,) = e2e.register_devices("e2e-limited", 1)
    finally:
        server.stop()

    server = Server(binary, workdir, rate_per_minute=LOW_RATE_PER_MINUTE)
    try:
        e2e.base_url = server.url
        e2e.session.rebase(server.url)
        e2e.session.expect(200, "POST", "/api/auth/login/", {"email": email, "password": PASSWORD})
        e2e.rate_limited(limited, limited_serial)
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", default=str(Path(__file__).resolve().parent.parent
                                             / "build" / "thermostat-sim"))
    args = parser.parse_args()
    binary = os.environ.get("THERMOSTAT_BIN")
    if not binary:
        print("e2e_sim: set THERMOSTAT_BIN to the release server binary", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="thermostat-e2e-") as tmp:
        workdir = Path(tmp)
        e2e = E2E(args.sim, workdir)
        try:
            scenarios(e2e, binary, workdir)
        except (RuntimeError, OSError, KeyError, ValueError) as error:
            e2e.expect(False, f"aborted: {error!r}")
        if e2e.failures:
            for log in sorted(workdir.glob("server-*.log")):
                print(f"--- {log.name} (tail)\n{log.read_text()[-4000:]}", file=sys.stderr)

    print(f"e2e: {e2e.failures} failure(s)")
    return 1 if e2e.failures else 0


if __name__ == "__main__":
    sys.exit(main())
