#!/usr/bin/env python3
"""Checks thermostat-sim's wire behaviour against a stand-in for the ingest endpoint.

The stand-in implements only POST /api/telemetry/ingest/ as DESIGN.md describes it:
device auth, strict sample validation, storage keyed by (device, timestamp),
per-device rate limiting with Retry-After, revoked keys answering 401. It lets
the simulator be checked without the platform server; tests/e2e_sim.py runs
the same scenarios against the real server.

usage: tests/sim_check.py [--sim build/thermostat-sim]
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

FIELDS = {"device_id", "mode", "temp_inside_c", "temp_outside_c", "setpoint_c",
          "hysteresis_c", "output", "timestamp"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


class Platform:
    """In-memory state of the stand-in: keys, stored samples, request log, knobs."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}
        self.revoked = set()
        self.samples = {}
        self.batch_sizes = []
        self.rate_limit = None  # (requests, window seconds)
        self.windows = {}
        self.lose_responses = 0  # commit, then drop the connection without answering

    def add_device(self, serial, key):
        self.keys[serial] = key
        self.samples[serial] = {}


def validate(sample, serial):
    if not isinstance(sample, dict) or set(sample) != FIELDS:
        return "fields"
    if sample["device_id"] != serial:
        return "device_id"
    if sample["mode"] not in ("OFF", "HEAT", "COOL", "AUTO"):
        return "mode"
    if sample["output"] not in ("OFF", "HEAT_ON", "COOL_ON"):
        return "output"
    for name in ("temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c"):
        if isinstance(sample[name], bool) or not isinstance(sample[name], (int, float)):
            return name
    if not TIMESTAMP.match(sample["timestamp"]):
        return "timestamp"
    moment = datetime.strptime(sample["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
    if moment.replace(tzinfo=timezone.utc).timestamp() > time.time() + 300:
        return "timestamp in the future"
    return None


def make_handler(platform):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body, headers=()):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/api/telemetry/ingest/":
                return self.answer(404, {"error": {"code": "not_found", "message": self.path}})
            if self.headers.get("Content-Type") != "application/json":
                return self.answer(415, {"error": {"code": "content_type", "message": "json"}})
            auth = self.headers.get("Authorization", "")
            serial, _, key = auth.removeprefix("Device ").partition(":")
            with platform.lock:
                if (not auth.startswith("Device ") or platform.keys.get(serial) != key
                        or serial in platform.revoked):
                    return self.answer(401, {"error": {"code": "unauthorized", "message": "no"}})
                if platform.rate_limit:
                    limit, window = platform.rate_limit
                    start, count = platform.windows.get(serial, (time.monotonic(), 0))
                    if time.monotonic() - start >= window:
                        start, count = time.monotonic(), 0
                    if count >= limit:
                        wait = max(1, round(window - (time.monotonic() - start)))
                        return self.answer(429, {"error": {"code": "rate_limited",
                                                           "message": "slow down"}},
                                           [("Retry-After", str(wait))])
                    platform.windows[serial] = (start, count + 1)
            document = json.loads(body)
            batch = document["samples"] if set(document) == {"samples"} else [document]
            for sample in batch:
                problem = validate(sample, serial)
                if problem:
                    return self.answer(422, {"error": {"code": "invalid", "message": problem}})
            with platform.lock:
                platform.batch_sizes.append(len(batch))
                stored = platform.samples[serial]
                fresh = [s for s in batch if s["timestamp"] not in stored]
                for s in fresh:
                    stored[s["timestamp"]] = s
                if platform.lose_responses > 0:
                    platform.lose_responses -= 1
                    self.close_connection = True
                    return None
            return self.answer(201, {"accepted": len(fresh),
                                     "duplicates": len(batch) - len(fresh)})

    return Handler


class Check:
    def __init__(self, sim):
        self.sim = sim
        self.platform = Platform()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.platform))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.dir = Path(tempfile.mkdtemp(prefix="sim-check-"))
        self.failures = 0

    def devices(self, name, count, as_uri=False):
        lines = []
        for i in range(count):
            serial, key = f"{name}-{i}", f"key+{name}/{i}="
            self.platform.add_device(serial, key)
            if as_uri and i % 2 == 1:
                lines.append("thermostat://provision?v=1&url=" + quote(self.url, safe="")
                             + f"&serial={serial}&key=" + quote(key, safe=""))
            else:
                lines.append(f"{serial} {key}")
        path = self.dir / f"{name}.txt"
        path.write_text("# generated\n" + "\n".join(lines) + "\n")
        return path, [f"{name}-{i}" for i in range(count)]

    def run(self, credentials, *args):
        report = self.dir / "report.json"
        command = [self.sim, "--url", self.url, "--credentials", str(credentials),
                   "--report", str(report), "--drain-timeout", "60", *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        data = json.loads(report.read_text()) if report.exists() else {"devices": []}
        report.unlink(missing_ok=True)
        return done.returncode, {d["serial"]: d for d in data["devices"]}, done

    def expect(self, condition, message):
        print(("ok    " if condition else "FAIL  ") + message)
        self.failures += 0 if condition else 1

    def stored_in_order(self, serial, count, interval):
        stamps = sorted(self.platform.samples[serial])
        seconds = [datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
                   .replace(tzinfo=timezone.utc).timestamp() for s in stamps]
        return (len(stamps) == count
                and all(b - a == interval for a, b in zip(seconds, seconds[1:]))
                and seconds[-1] <= time.time())


def outage(check):
    path, serials = check.devices("outage", 3, as_uri=True)
    code, report, _ = check.run(path, "--samples", 40, "--interval", 60, "--outage", "10:25",
                                "--batch", 8)
    check.expect(code == 0, f"outage: exit 0 (got {code})")
    for serial in serials:
        check.expect(check.stored_in_order(serial, 40, 60),
                     f"outage: {serial} stored 40 samples exactly once, 60 s apart, none ahead")
        check.expect(report[serial]["state"] == "ok" and report[serial]["acknowledged"] == 40,
                     f"outage: {serial} report says ok with 40 acknowledged")
    check.expect(max(check.platform.batch_sizes) == 8, "outage: backlog sent in batches of 8")


def buffer_overflow(check):
    path, (serial,) = check.devices("overflow", 1)
    code, report, _ = check.run(path, "--samples", 30, "--outage", "0:19", "--buffer", 5)
    check.expect(code == 1, f"overflow: exit 1 (got {code})")
    # Samples 0..19 meet a 5-slot buffer; sample 20 is taken before the first upload, so
    # the 16 oldest are dropped and the newest 14 arrive.
    check.expect(report[serial]["dropped"] == 16 and report[serial]["state"] == "undelivered",
                 "overflow: 16 oldest samples dropped and reported")
    check.expect(check.stored_in_order(serial, 14, 60)
                 and max(check.platform.samples[serial]) == report[serial]["last_timestamp"],
                 "overflow: the newest 14 arrived")


def rate_limit(check):
    check.platform.rate_limit = (3, 2)
    path, (serial,) = check.devices("limited", 1)
    code, report, _ = check.run(path, "--samples", 20, "--batch", 2)
    check.platform.rate_limit = None
    check.expect(code == 0, f"rate limit: exit 0 (got {code})")
    check.expect(report[serial]["rate_limited"] >= 1, "rate limit: 429 answers were seen")
    check.expect(check.stored_in_order(serial, 20, 60), "rate limit: all 20 samples arrived")


def lost_responses(check):
    check.platform.lose_responses = 2
    path, (serial,) = check.devices("lossy", 1)
    code, report, _ = check.run(path, "--samples", 10, "--batch", 5)
    check.expect(code == 0, f"lost responses: exit 0 (got {code})")
    check.expect(report[serial]["duplicates"] >= 1, "lost responses: retries counted duplicates")
    check.expect(check.stored_in_order(serial, 10, 60), "lost responses: stored exactly once")


def revoked(check):
    path, (serial,) = check.devices("revoked", 1)
    check.platform.revoked.add(serial)
    code, report, _ = check.run(path, "--samples", 10)
    check.expect(code == 3, f"revoked: exit 3 (got {code})")
    check.expect(report[serial]["state"] == "needs_reprovisioning"
                 and report[serial]["requests"] == 1,
                 "revoked: one request, then needs_reprovisioning")


def heater_failure(check):
    path, (serial,) = check.devices("cold", 1)
    code, _, _ = check.run(path, "--samples", 30, "--heater-failure", "--mode", "HEAT",
                           "--outside-temp", -10)
    temps = [s["temp_inside_c"] for _, s in sorted(check.platform.samples[serial].items())]
    outputs = {s["output"] for s in check.platform.samples[serial].values()}
    check.expect(code == 0, f"heater failure: exit 0 (got {code})")
    check.expect(all(b < a for a, b in zip(temps, temps[1:])) and outputs == {"HEAT_ON"},
                 f"heater failure: heater on, inside falls {temps[0]} -> {temps[-1]}")


def usage(check):
    code, _, done = check.run(check.dir / "missing.txt")
    check.expect(code == 2 and "cannot open" in done.stderr, "usage: missing file exits 2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", default=str(Path(__file__).parent.parent
                                             / "build" / "thermostat-sim"))
    check = Check(parser.parse_args().sim)
    for scenario in (outage, buffer_overflow, rate_limit, lost_responses, revoked,
                     heater_failure, usage):
        scenario(check)
    check.server.shutdown()
    print(f"sim check: {check.failures} failure(s)")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
