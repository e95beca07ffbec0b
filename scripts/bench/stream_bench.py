#!/usr/bin/env python3
"""Live stream and dashboard benchmark: the release server, one backend at a time.

Part of `make bench` (scripts/bench.py calls `run_backend` after the ingest runs); alone:
    python3 scripts/bench/stream_bench.py --binary .build/release/thermostat --backend sqlite

1. Commit-to-browser latency of `GET /api/telemetry/stream/` while wrk runs the ingest
   benchmark's single-sample load (ingest.lua, same threads, connections and devices) into the
   subscriber's tenant. wrk cannot report per-request times, so a probe thread posts one sample
   of its own device every 50 ms (a unique timestamp each) and notes when it was sent and when
   its 2xx came back (the answer follows the commit); the stream client thread, a raw socket
   reading the chunked SSE body as it arrives, notes when that sample's event arrived. Interleaved
   rounds of the same load: no subscriber, one tenant-wide subscriber (what the overview page
   opens: every sample of the tenant), one subscriber to the probe's device only (the device
   page). The probe runs in all three, so the load is the same; the ingest rates are compared by
   their medians. Also the probe alone, without wrk, as the floor.
2. Time to render the dashboard overview `GET /` for a tenant with 1,000 devices (one sample
   each), client-side over sequential keep-alive requests, against `GET /health/`,
   `GET /api/auth/me/` (same session, no devices) and `GET /api/devices/` (the same 1,000
   summaries as JSON) measured the same way in interleaved rounds; then wrk throughput.
The stream client, probe and wrk share the machine's cores with the server.
"""
import argparse
import http.client
import importlib.util
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_INTERVAL = 0.05
STREAM_ROUNDS = 3
OVERVIEW_DEVICES = 1000
PAGE_REQUESTS = 200
PAGE_ROUNDS = 4
PAGE_WRK_SECONDS = 5
PAGE_WRK_CONNECTIONS = 8


def load_helpers():
    """scripts/bench.py, loaded by path (the folder scripts/bench/ shadows the name)."""
    spec = importlib.util.spec_from_file_location("bench_helpers", os.path.join(HERE, "..", "bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


percentile = load_helpers().percentile


def iso(epoch_seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_seconds))


def sample_body(serial, timestamp, temperature=20.5):
    return json.dumps({"device_id": serial, "mode": "HEAT", "temp_inside_c": temperature, "temp_outside_c": 4.5,
                       "setpoint_c": 21, "hysteresis_c": 0.5, "output": "HEAT_ON", "timestamp": timestamp})


class StreamClient(threading.Thread):
    """Reads `GET /api/telemetry/stream/` over a raw socket: decodes the chunked body, counts
    `sample` events and notes the arrival time (time.perf_counter() right after the recv that
    completed it) of each event of `probe_serial`, keyed by its timestamp to the second."""

    def __init__(self, port, cookie, probe_serial, device=None):
        super().__init__(daemon=True)
        self.port, self.cookie, self.device = port, cookie, device
        self.marker = f'"device":"{probe_serial}"'.encode()
        self.timestamp = re.compile(rb'"timestamp":"([^"]{19})')
        self.arrivals = {}
        self.events = 0
        self.ended_early = False
        self.cpu_share = None
        self.connected = threading.Event()
        self.stopping = False
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        query = f"?device={device}" if device else ""
        self.sock.sendall((f"GET /api/telemetry/stream/{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Accept: text/event-stream\r\nCookie: {cookie}\r\n\r\n").encode())

    def run(self):
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            self.read_events()
        finally:
            self.cpu_share = (time.thread_time() - cpu) / (time.perf_counter() - started)

    def read_events(self):
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = self.sock.recv(65536)
            if not data:
                raise SystemExit("stream closed before its headers")
            raw += data
        head, raw = raw.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
            raise SystemExit("unexpected stream answer: " + head.decode(errors="replace"))
        text = b""  # decoded SSE text not yet split into events
        while True:
            now = time.perf_counter()
            position = 0
            while True:  # whole chunks in `raw`
                line_end = raw.find(b"\r\n", position)
                if line_end < 0:
                    break
                size = int(raw[position:line_end].split(b";")[0], 16)
                if size == 0:
                    self.ended_early = not self.stopping
                    return
                if len(raw) < line_end + 2 + size + 2:
                    break
                text += raw[line_end + 2:line_end + 2 + size]
                position = line_end + 2 + size + 2
            raw = raw[position:]
            cut = text.rfind(b"\n\n")
            if cut >= 0:
                events, text = text[:cut], text[cut + 2:]
                if b": connected" in events:
                    self.connected.set()
                self.events += events.count(b"event: sample\n")
                if self.marker in events:
                    for block in events.split(b"\n\n"):
                        if self.marker in block:
                            match = self.timestamp.search(block)
                            self.arrivals.setdefault(match.group(1).decode(), now)
            try:
                data = self.sock.recv(262144)
            except OSError:
                data = b""
            if not data:
                self.ended_early = not self.stopping
                return
            raw += data

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.join(timeout=10)


class Probe(threading.Thread):
    """Posts one sample of its device every PROBE_INTERVAL over one keep-alive connection, each
    with a new timestamp (`next_second` onwards, one second apart); notes send and answer times."""

    def __init__(self, port, serial, key, next_second):
        super().__init__(daemon=True)
        self.port, self.serial, self.key, self.next_second = port, serial, key, next_second
        self.sent = {}  # timestamp -> (send, answer, status)
        self.halt = threading.Event()
        self.error = None

    def run(self):
        try:
            self.post_until_halted()
        except OSError as error:
            self.error = error

    def post_until_halted(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json", "Authorization": f"Device {self.serial}:{self.key}"}
        tick = time.perf_counter()
        while not self.halt.is_set():
            timestamp = iso(self.next_second)
            self.next_second += 1
            body = sample_body(self.serial, timestamp)
            sent = time.perf_counter()
            connection.request("POST", "/api/telemetry/ingest/", body, headers)
            response = connection.getresponse()
            response.read()
            self.sent[timestamp[:19]] = (sent, time.perf_counter(), response.status)
            tick += PROBE_INTERVAL
            delay = tick - time.perf_counter()
            if delay > 0:
                self.halt.wait(delay)
            else:
                tick = time.perf_counter()
        connection.close()


def cpu_seconds(pid):
    """User + system CPU time of a process so far, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def register_user(helpers, base, email, tenant_name):
    _, headers, _ = helpers.call(base, "/api/auth/register/",
                                 {"email": email, "password": "Bench-Passw0rd!", "tenant_name": tenant_name})
    return headers["Set-Cookie"].split(";")[0]


def register_devices(helpers, base, cookie, serials):
    def one(serial):
        return serial, helpers.call(base, "/api/devices/register/", {"serial": serial}, {"Cookie": cookie})[2]["api_key"]
    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, serials))


def summarize(values_ms):
    if not values_ms:
        return "–", "–"
    return f"{percentile(values_ms, 50):.2f}", f"{percentile(values_ms, 99):.2f}"


def stream_runs(helpers, server, database, args, work, clock):
    """Interleaved rounds of the single-sample wrk load with no subscriber, a tenant-wide one
    and a device one; the probe runs in all. Returns rows for the table."""
    cookie = register_user(helpers, server.base, "stream-bench@example.com", "Bench Stream")
    serials = [f"STREAM-{i:04d}" for i in range(args.devices)]
    keys = register_devices(helpers, server.base, cookie, serials + ["PROBE-0001"])
    devices_file = os.path.join(work, "stream-devices.txt")
    with open(devices_file, "w") as out:
        out.writelines(f"{serial} {keys[serial]}\n" for serial in serials)
    ingest = os.path.join(HERE, "ingest.lua")
    # wrk's timestamps: one 10-minute slot per run, 3 to 5 hours ago (the probe's are 5.4 to 6
    # hours ago), so nothing is a duplicate and nothing is old enough for a tier's downsampling
    epoch = int(time.time()) - 3 * 3600

    def one_run(mode, slot, seconds, with_wrk=True):
        subscriber = None
        if mode != "none":
            subscriber = StreamClient(server.port, cookie, "PROBE-0001", "PROBE-0001" if mode == "device" else None)
            subscriber.start()
            if not subscriber.connected.wait(10):
                raise SystemExit("stream did not connect")
        before = helpers.count_samples(database)
        cpu_before = cpu_seconds(server.process.pid)
        probe = Probe(server.port, "PROBE-0001", keys["PROBE-0001"], clock["next"])
        probe.start()
        if with_wrk:
            result = helpers.wrk(server.base, ingest, seconds, args.connections, args.threads,
                                 {"BENCH_DEVICES": devices_file, "BENCH_BATCH": "1",
                                  "BENCH_BASE_EPOCH": str(epoch - slot * 600)})
        else:
            time.sleep(seconds)
            result = {"rps": None, "non2xx": 0, "errors": 0}
        probe.halt.set()
        probe.join()
        if server.process.poll() is not None:
            raise SystemExit(f"the server exited with status {server.process.returncode} during a {mode} run")
        clock["next"] = probe.next_second
        time.sleep(1.0)  # the last commits reach the stream
        server_cpu = cpu_seconds(server.process.pid) - cpu_before
        committed = helpers.count_samples(database) - before
        if subscriber:
            subscriber.stop()
        if probe.error:
            raise SystemExit(f"probe failed in a {mode} run: {probe.error}")
        result.update(mode=mode, probe=probe.sent, committed=committed, server_cpu=server_cpu,
                      client_cpu=subscriber.cpu_share if subscriber else None,
                      events=subscriber.events if subscriber else None,
                      arrivals=subscriber.arrivals if subscriber else {},
                      ended_early=subscriber.ended_early if subscriber else False)
        return result

    helpers.wrk(server.base, ingest, 2, args.connections, args.threads,  # warm-up
                {"BENCH_DEVICES": devices_file, "BENCH_BATCH": "1", "BENCH_BASE_EPOCH": str(epoch)})
    time.sleep(1.0)  # its last commits land before the first run counts
    runs = {"idle": [one_run("tenant", 0, 5, with_wrk=False)], "none": [], "tenant": [], "device": []}
    slot = 1
    for _ in range(args.stream_rounds):
        for mode in ("none", "tenant", "device"):
            runs[mode].append(one_run(mode, slot, args.seconds))
            slot += 1
    return runs


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def print_stream(name, runs, args):
    print(f"\n**Live stream, {name}**: wrk -t{args.threads} -c{args.connections} -d{args.seconds}s single-sample "
          f"ingest (ingest.lua, {args.devices} devices) into the subscriber's tenant, plus a probe device posting "
          f"every {PROBE_INTERVAL * 1000:.0f} ms; {args.stream_rounds} interleaved rounds (medians; latencies "
          "pooled over the rounds)\n")
    labels = {"idle": "tenant-wide, probe only (no wrk)", "none": "none", "tenant": "tenant-wide (overview page)",
              "device": "the probe's device only (device page)"}
    baseline = median([r["rps"] for r in runs["none"]])
    print("| subscriber | ingest req/s | vs no subscriber | server CPU µs/sample | "
          "events received / samples committed | stream client CPU | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in ("none", "tenant", "device", "idle"):
        rounds = runs[mode]
        rate = median([r["rps"] for r in rounds if r["rps"] is not None])
        # (not for the probe alone: 20 samples/s, so idle time and the 10 ms tick would dominate)
        cpu = median([r["server_cpu"] / r["committed"] * 1e6 for r in rounds if r["committed"] and r["rps"]])
        events = sum(r["events"] or 0 for r in rounds)
        # a device subscriber gets the probe's samples only
        expected = sum(r["committed"] if mode != "device" else sum(1 for v in r["probe"].values() if v[2] // 100 == 2)
                       for r in rounds)
        delivered = f"{events:,} / {expected:,}" if mode != "none" else "–"
        ended = sum(r["ended_early"] for r in rounds)
        if ended:
            delivered += f" (stream ended early ×{ended})"
        client = median([r["client_cpu"] for r in rounds if r["client_cpu"] is not None])
        non2xx = sum(r["non2xx"] + r["errors"] for r in rounds) + sum(
            1 for r in rounds for v in r["probe"].values() if v[2] // 100 != 2)
        print(f"| {labels[mode]} | {f'{rate:,.0f}' if rate else '–'} | {f'{rate / baseline:.0%}' if rate else '–'} | "
              f"{f'{cpu:.0f}' if cpu else '–'} | {delivered} | {f'{client:.0%} of a core' if client is not None else '–'} | {non2xx} |")
    print("\n(ingest req/s per round: " + "; ".join(
        f"{mode} " + ", ".join(f"{r['rps']:,.0f}" for r in runs[mode]) for mode in ("none", "tenant", "device")) + ")\n")
    print("| subscriber | probe send → 2xx, p50 / p99 ms | 2xx → event, p50 / p99 ms | send → event, p50 / p99 ms | "
          "probe samples seen / answered 2xx |")
    print("|---|---:|---:|---:|---:|")
    for mode in ("none", "tenant", "device", "idle"):
        answer, after_answer, after_send = [], [], []
        answered = seen = 0
        for r in runs[mode]:
            for timestamp, (sent, answered_at, status) in r["probe"].items():
                if status // 100 != 2:
                    continue
                answered += 1
                answer.append((answered_at - sent) * 1000)
                arrival = r["arrivals"].get(timestamp)
                if arrival is not None:
                    seen += 1
                    after_answer.append((arrival - answered_at) * 1000)
                    after_send.append((arrival - sent) * 1000)
        print(f"| {labels[mode]} | {' / '.join(summarize(answer))} | {' / '.join(summarize(after_answer))} | "
              f"{' / '.join(summarize(after_send))} | {f'{seen} / {answered}' if mode != 'none' else '–'} |")


def timed_gets(port, path, cookie, count):
    """`count` sequential GETs over one keep-alive connection; returns (milliseconds, body bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Cookie": cookie} if cookie else {}
    times, size = [], 0
    for _ in range(count):
        start = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        times.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
        size = len(body)
    connection.close()
    return times, size


def overview_runs(helpers, server, args, clock):
    cookie = register_user(helpers, server.base, "overview-bench@example.com", "Bench Overview")
    serials = [f"OVERVIEW-{i:04d}" for i in range(OVERVIEW_DEVICES)]
    started = time.perf_counter()
    keys = register_devices(helpers, server.base, cookie, serials)
    registered = time.perf_counter() - started
    timestamp = iso(clock["next"])
    clock["next"] += 1

    def post(serial):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("POST", "/api/telemetry/ingest/", sample_body(serial, timestamp, 18 + int(serial[-4:]) % 600 / 100),
                           {"Content-Type": "application/json", "Authorization": f"Device {serial}:{keys[serial]}"})
        status = connection.getresponse().status
        connection.close()
        return status
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(post, serials))
    if any(status != 200 for status in statuses):
        raise SystemExit("overview samples: not all stored")
    page = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    page.request("GET", "/", headers={"Cookie": cookie})
    html = page.getresponse().read().decode()
    page.close()
    rows = html.count('data-serial="')
    if rows != OVERVIEW_DEVICES:
        raise SystemExit(f"overview shows {rows} devices, not {OVERVIEW_DEVICES}")

    targets = [("GET /health/ (baseline)", "/health/", None), ("GET /api/auth/me/ (session, no devices)", "/api/auth/me/", cookie),
               (f"GET /api/devices/ ({OVERVIEW_DEVICES:,} devices, JSON)", "/api/devices/", cookie),
               (f"GET / overview ({OVERVIEW_DEVICES:,} devices, HTML)", "/", cookie)]
    for _, path, target_cookie in targets:  # warm-up
        timed_gets(server.port, path, target_cookie, 5)
    times = {label: [] for label, _, _ in targets}
    sizes = {}
    for _ in range(PAGE_ROUNDS):
        for label, path, target_cookie in targets:
            batch, sizes[label] = timed_gets(server.port, path, target_cookie, PAGE_REQUESTS // PAGE_ROUNDS)
            times[label] += batch
    health = os.path.join(HERE, "health.lua")
    throughput = {}
    for label, path, target_cookie in targets:
        if path == "/api/auth/me/":
            continue
        throughput[label] = helpers.wrk(server.base, health, PAGE_WRK_SECONDS, PAGE_WRK_CONNECTIONS, args.threads, {},
                                        path=path, headers=[f"Cookie: {target_cookie}"] if target_cookie else [],
                                        timeout=10)
    return {"targets": targets, "times": times, "sizes": sizes, "throughput": throughput, "registered": registered}


def print_overview(name, results, args):
    print(f"\n**Dashboard overview, {name}**: {PAGE_REQUESTS} sequential keep-alive GETs each "
          f"({PAGE_ROUNDS} interleaved rounds), then wrk -t{args.threads} -c{PAGE_WRK_CONNECTIONS} "
          f"-d{PAGE_WRK_SECONDS}s; {OVERVIEW_DEVICES:,} devices registered in {results['registered']:.1f} s\n")
    print("| request | body bytes | p50 ms | p99 ms | p50 vs /health/ | wrk req/s | wrk p50 ms | wrk p99 ms | "
          "wrk vs /health/ | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    baseline_p50 = percentile(results["times"]["GET /health/ (baseline)"], 50)
    baseline_rps = results["throughput"]["GET /health/ (baseline)"]["rps"]
    for label, _, _ in results["targets"]:
        t = results["times"][label]
        w = results["throughput"].get(label)
        wrk_cells = (f"{w['rps']:,.0f} | {w['p50_ms']:.2f} | {w['p99_ms']:.2f} | {w['rps'] / baseline_rps:.1%} | "
                     f"{w['non2xx'] + w['errors']}") if w else "– | – | – | – | –"
        print(f"| {label} | {results['sizes'][label]:,} | {percentile(t, 50):.2f} | {percentile(t, 99):.2f} | "
              f"{percentile(t, 50) / baseline_p50:.1f}× | {wrk_cells} |")


def run_backend(helpers, name, database, args, work):
    log_path = os.path.join(work, f"{name}-stream-server.log")
    log = open(log_path, "w")
    server = helpers.Server(args.binary, database, log, extra_env={"THERMOSTAT_REGISTER_RATE_PER_HOUR": "1000"})
    clock = {"next": int(time.time()) - 6 * 3600}  # probe timestamps: one second apart, never reused
    try:
        runs = stream_runs(helpers, server, database, args, work, clock)
        print_stream(name, runs, args)
        sys.stdout.flush()
        print_overview(name, overview_runs(helpers, server, args, clock), args)
        sys.stdout.flush()
    finally:
        server.stop()
        log.close()
        with open(log_path) as server_log:
            problems = [line.rstrip() for line in server_log if "error" in line or "warning" in line]
        for line in problems[:5]:
            print(f"server log ({name}, stream): {line}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--stream-rounds", type=int, default=STREAM_ROUNDS)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    args = parser.parse_args()
    helpers = load_helpers()
    work = tempfile.mkdtemp(prefix="thermostat-stream-bench-")
    backends = []
    if args.backend in ("sqlite", "both"):
        backends.append(("sqlite", f"sqlite:{work}/stream.sqlite"))
    if args.backend in ("postgres", "both"):
        url = os.environ.get("BENCH_DATABASE_URL")
        if not url:
            raise SystemExit("BENCH_DATABASE_URL is not set (make bench starts a cluster)")
        backends.append(("postgres", url))
    for name, database in backends:
        run_backend(helpers, name, database, args, work)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
