#!/usr/bin/env python3
"""Browser suite: the web dashboard in a real browser (headless Chromium through Selenium).

One release server (`thermostat serve`, SQLite in a temp folder, 127.0.0.1 only) for the whole
run; the steps follow one owner through the dashboard, each a named step:

  1. sign up: `/` without a session redirects to `/login` (also checked at phone width);
     `/signup` lands on `/` with `#no-devices`.
  2. add a device: the key page shows the key, the provisioning URI and a QR code that decodes
     (zbarimg) to exactly that URI; the key authenticates ingest; it is shown only once.
  3. live updates: a new sample appears on `/` and on the device page (chart point count,
     `#latest`) without a reload.
  4. range links: `7d` redraws the chart.
  5. rename, rotate (new key and QR; the old key works during its grace), revoke (401).
  6. scripts: a broken upload shows Lua's error at its line (gutter, listing); the fixed one is
     stored, dry-runs on the pasted sample and on a device's newest samples, is activated (a
     sample ingested through it is stored transformed) and deactivated.
  7. API tokens: created once, work as Bearer, revoked (401).
  8. alerts: a webhook channel pointing at a receiver this suite runs on 127.0.0.1 (its secret
     shown once; "Send test" arrives signed); a config error on the rule form is a 422 at the
     field; a threshold rule (high_c 25) for the suite's device; a hot sample fires it (listed
     as firing on `/alerts`, a signed "firing" webhook); acknowledged in the UI; on the device
     page; the delivery log; silenced and unsilenced; a cool sample resolves it (history, a
     signed "resolved" webhook).
  9. tenant switch into a tenant the user was added to (as a member) over the JSON API.
 10. viewer: made a viewer there, the user sees no add-device, rotate/revoke, script editor,
     silence form or alert rule and channel editors.
 11. logout: back to `/login`, the session cookie no longer works.
 12. the browser console stayed clean: no Content Security Policy violation, no JS error.

Page elements come from the contract in docs/dashboard.md. A failed step saves a screenshot and
the page source under the artifacts folder (default .build/browser-artifacts/), which also
holds a screenshot of each page visited, the decoded QR images, the browser console and the
server log.

usage: scripts/browser_suite.py --binary .build/release/thermostat [--artifacts DIR]
Standard library apart from Selenium (scripts/browser-venv.sh); needs Debian's chromium,
chromium-driver and zbar-tools. Selenium Manager is never used (explicit paths, SE_OFFLINE).
"""
import argparse
import hashlib
import hmac
import http.cookiejar
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

# Selenium Manager must never download a driver or a browser: the paths below are explicit.
os.environ["SE_OFFLINE"] = "true"
os.environ["SE_AVOID_STATS"] = "true"

from selenium import webdriver  # noqa: E402  (after the environment above)
from selenium.common.exceptions import (  # noqa: E402
    NoAlertPresentException, NoSuchElementException, StaleElementReferenceException,
    TimeoutException, UnexpectedAlertPresentException, WebDriverException)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 900)
PHONE = (390, 844)
WAIT = 10            # seconds for an element or a page after an action
LIVE_WAIT = 30       # seconds for a live update to reach an open page
DRAIN = 5            # the server's shutdown drain bound in this suite

PASSWORD = "Correct-Horse-Battery-9"
OWNER_EMAIL = "owner@example.com"
OWNER_TENANT = "Browser Suite Home"
OTHER_EMAIL = "neighbour@example.com"
OTHER_TENANT = "Beach House"
SERIAL = "TH-B001"
SCRIPT_SERIAL = "TH-B002"   # registered for the scripts step when SERIAL can no longer ingest
OTHER_SERIAL = "TH-B900"
SCRIPT_NAME = "inside-plus-one"
# Line 4 (`end` right after a dangling `+`) is where Lua reports the syntax error.
BROKEN_SCRIPT = ("return {\n"
                 "  transform = function(s)\n"
                 "    s.temp_inside_c = s.temp_inside_c +\n"
                 "  end\n"
                 "}")
BROKEN_LINE = 4
FIXED_SCRIPT = ("return {\n"
                "  transform = function(s)\n"
                "    print(\"seen\", s.temp_inside_c)\n"
                "    s.temp_inside_c = s.temp_inside_c + 1\n"
                "    return s\n"
                "  end\n"
                "}")
PLUGINS = ("fahrenheit-input", "threshold", "csv")
FIELDS = ("name", "location", "status", "temp_inside_c", "temp_outside_c", "setpoint_c", "mode",
          "output", "last_seen")
CHANNEL_NAME = "Suite receiver"
RULE_NAME = "Too hot (browser suite)"
HOT = 30.5      # above the rule's high_c of 25: fires
COOL = 20.0     # below 25 minus the plugin's hysteresis of 0.5: resolves


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`thermostat serve` on a free loopback port with a temp SQLite database."""

    def __init__(self, binary, workdir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        env = dict(os.environ)
        env.update({
            "THERMOSTAT_HOST": "127.0.0.1",
            "THERMOSTAT_PUBLIC_URL": self.url,
            "THERMOSTAT_SECRET_KEY": secrets.token_urlsafe(48),
            "THERMOSTAT_BCRYPT_COST": "4",
            "THERMOSTAT_LOGIN_RATE_PER_MINUTE": "10000",
            "THERMOSTAT_LOGIN_RATE_PER_ACCOUNT_PER_HOUR": "10000",
            "THERMOSTAT_REGISTER_RATE_PER_HOUR": "10000",
            "THERMOSTAT_LUA_WORKERS": "1",
            "THERMOSTAT_SHUTDOWN_DRAIN_SECONDS": str(DRAIN),
        })
        database = f"sqlite:{workdir / 'thermostat.sqlite'}"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [binary, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--database", database],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPOSITORY)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            check(self.process.poll() is None, f"server exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)  # nothing to await but the port: poll it
        self.process.kill()
        self.process.wait()
        raise Failure(f"server not ready within 60 s:\n{self.log_tail()}")

    def log(self):
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines=30):
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self):
        """SIGTERM, then SIGKILL past the drain bound; returns a line for the report."""
        if self.process.poll() is not None:
            return f"server had already exited with status {self.process.returncode}"
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=DRAIN + 5)
            return f"server stopped (status {self.process.returncode})"
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return "server did not stop on SIGTERM; killed"


class Api:
    """The JSON API as a script sees it: urllib, with a cookie jar for the session."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, method, path, body=None, headers=None, cookies=True):
        """(status, parsed JSON or None)."""
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            headers.setdefault("Origin", self.base)
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        opener = self.opener if cookies else urllib.request.build_opener()
        try:
            with opener.open(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw[:200]


class Samples:
    """Telemetry as a device sends it, with strictly increasing timestamps (no duplicates)."""

    def __init__(self, base):
        self.api = Api(base)
        self.last_millis = 0
        self.sent = {}

    def post(self, serial, key, temp_inside):
        millis = max(int(time.time() * 1000), self.last_millis + 1)
        self.last_millis = millis
        stamp = datetime.fromtimestamp(millis // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        sample = {"device_id": serial, "mode": "HEAT", "temp_inside_c": temp_inside, "temp_outside_c": 3.1,
                  "setpoint_c": 21, "hysteresis_c": 0.5, "output": "HEAT_ON",
                  "timestamp": f"{stamp}.{millis % 1000:03d}Z"}
        status, body = self.api.call("POST", "/api/telemetry/ingest/", sample,
                                     headers={"Authorization": f"Device {serial}:{key}"}, cookies=False)
        if status == 200:
            self.sent[serial] = self.sent.get(serial, 0) + 1
        return status, body

    def accepted(self, serial, key, temp_inside, what):
        status, body = self.post(serial, key, temp_inside)
        check(status == 200 and isinstance(body, dict) and body.get("accepted") == 1,
              f"{what}: ingest answered {status} {body}")

    def refused(self, serial, key, what):
        status, body = self.post(serial, key, 20.0)
        check(status == 401, f"{what}: ingest answered {status} {body}, expected 401")


class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 in a thread (http.server): records every POST with its
    headers and body; `signed()` checks X-Thermostat-Signature as a receiver must:
    `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, t within 5 minutes."""

    def __init__(self):
        self.received = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                with receiver.lock:
                    receiver.received.append({"path": self.path, "signature": self.headers.get("X-Thermostat-Signature"),
                                              "delivery": self.headers.get("X-Thermostat-Delivery"),
                                              "body": body, "json": parsed if isinstance(parsed, dict) else {}})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/thermostat"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)
        self.thread.start()

    def matching(self, predicate):
        with self.lock:
            return [r for r in self.received if predicate(r["json"])]

    @staticmethod
    def signed(request, secret):
        """Whether the request's X-Thermostat-Signature is valid for its body under secret."""
        fields = dict(part.split("=", 1) for part in (request["signature"] or "").split(",") if "=" in part)
        stamp, mac = fields.get("t", ""), fields.get("v1", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return False
        expected = hmac.new(secret.encode(), stamp.encode() + b"." + request["body"], hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, mac)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Browser:
    """Headless Chromium with the console collected; helpers that wait on events, never sleep."""

    def __init__(self, base, artifacts, workdir):
        self.base = base
        self.artifacts = artifacts
        self.shots = 0
        self.console = []   # (step, entry)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         f"--window-size={WINDOW[0]},{WINDOW[1]}", "--force-device-scale-factor=1",
                         "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                         "--disable-extensions", "--disable-background-networking", "--disable-sync",
                         "--disable-component-update", "--disable-default-apps",
                         "--password-store=basic", f"--user-data-dir={workdir / 'chromium-profile'}"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # A confirm() must be answered by the step, never dismissed behind its back.
        options.unhandled_prompt_behavior = "ignore"
        service = Service(CHROMEDRIVER, log_output=str(workdir / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(30)
        self.driver.set_script_timeout(10)

    # Navigation and waiting

    def go(self, path):
        self.driver.get(self.base + path)

    def path(self):
        return urllib.parse.urlsplit(self.driver.current_url).path

    def until(self, condition, what, timeout=WAIT):
        """Waits for condition(driver) to be truthy; a timeout names what was awaited."""
        try:
            return WebDriverWait(self.driver, timeout, ignored_exceptions=(
                NoSuchElementException, StaleElementReferenceException)).until(condition)
        except TimeoutException:
            raise Failure(f"timed out after {timeout} s waiting for {what} (at {self.driver.current_url})") from None

    def find(self, css, timeout=WAIT, visible=False):
        def found(driver):
            element = driver.find_element(By.CSS_SELECTOR, css)
            return element if (not visible or element.is_displayed()) else None
        return self.until(found, f"{'visible ' if visible else ''}{css}", timeout)

    def absent(self, css):
        return not self.driver.find_elements(By.CSS_SELECTOR, css)

    def at(self, path, timeout=WAIT):
        self.until(lambda d: self.path() == path, f"the page {path}", timeout)
        self.until(lambda d: d.execute_script("return document.readyState") == "complete",
                   f"{path} to finish loading", timeout)

    def text(self, css):
        return self.find(css).text.strip()

    def fill(self, css, value):
        element = self.find(css, visible=True)
        element.clear()
        element.send_keys(value)

    def submit(self, form_css, confirm=None):
        """Clicks the form's submit button and waits for the page it leads to.

        confirm=True expects a confirm() and accepts it; None accepts one if it comes; False
        fails on one."""
        form = self.find(form_css)
        buttons = form.find_elements(By.CSS_SELECTOR, "button[type=submit], input[type=submit], button:not([type])")
        check(buttons, f"{form_css} has no submit button")
        page = self.driver.find_element(By.TAG_NAME, "html")
        buttons[0].click()
        answered = []

        def settled(driver):
            try:
                alert = driver.switch_to.alert
            except NoAlertPresentException:
                alert = None
            if alert is not None:
                text = alert.text
                if confirm is False:
                    alert.dismiss()
                    raise Failure(f"{form_css} asked {text!r} unexpectedly")
                answered.append(text)
                alert.accept()
                return False
            try:
                page.is_enabled()  # raises once the page was replaced
                return False
            except StaleElementReferenceException:
                return True
            except UnexpectedAlertPresentException:
                return False
            except WebDriverException as error:
                # Chrome sometimes reports the replaced page's node this way instead.
                if "does not belong to the document" in str(error):
                    return True
                raise
        self.until(settled, f"the page after submitting {form_css}")
        check(confirm is not True or answered, f"{form_css} did not ask for confirmation")
        self.until(lambda d: d.execute_script("return document.readyState") == "complete",
                   f"the page after {form_css} to finish loading")
        return answered

    # Artifacts and console

    def artifact_name(self, label):
        self.shots += 1
        return f"{self.shots:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', label).strip('-').lower()}"

    def shot(self, label):
        path = self.artifacts / (self.artifact_name(label) + ".png")
        self.driver.save_screenshot(str(path))
        return path

    def dismiss_alert(self):
        """Closes an alert a failed step left open (else every later command fails); its text."""
        try:
            alert = self.driver.switch_to.alert
            text = alert.text
            alert.dismiss()
            return text
        except (NoAlertPresentException, WebDriverException):
            return None

    def save_failure(self, label):
        name = "FAILED-" + self.artifact_name(label)
        saved = []
        alert = self.dismiss_alert()
        if alert is not None:
            saved.append(f"(dismissed an open alert: {alert!r})")
        try:
            self.driver.save_screenshot(str(self.artifacts / f"{name}.png"))
            saved.append(f"{name}.png")
            (self.artifacts / f"{name}.html").write_text(self.driver.page_source)
            saved.append(f"{name}.html")
        except WebDriverException as error:  # an alert still open, a dead browser…
            saved.append(f"(could not save the page: {error.msg})")
        return saved

    def drain_console(self, step):
        try:
            for entry in self.driver.get_log("browser"):
                self.console.append((step, entry))
        except WebDriverException:
            pass

    # Page checks

    def marker_set(self):
        self.driver.execute_script("window.__browserSuiteMarker = 1")

    def marker_kept(self, what):
        check(self.driver.execute_script("return window.__browserSuiteMarker") == 1,
              f"{what}: the page reloaded (expected a live update)")

    def chart_points(self):
        value = self.driver.find_element(By.CSS_SELECTOR, "canvas#chart").get_attribute("data-point-count")
        return int(value) if value and value.strip().lstrip("-").isdigit() else None

    def chart_painted(self):
        """How many pixels of canvas#chart are not transparent."""
        return self.driver.execute_script("""
            const canvas = document.querySelector('canvas#chart');
            if (!canvas || !canvas.width || !canvas.height) return 0;
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i]) painted++;
            return painted;""")

    def quit(self):
        try:
            self.driver.quit()
        except WebDriverException:
            pass


class Suite:
    def __init__(self, server, browser, artifacts):
        self.server = server
        self.base = server.url
        self.b = browser
        self.artifacts = artifacts
        self.samples = Samples(self.base)
        self.key = None
        self.bench = None   # (serial, key) of SCRIPT_SERIAL once registered
        self.other = None   # the second user's API session (tenant switch, viewer)
        self.notes = []

    def note(self, text):
        self.notes.append(text)

    # Shared checks

    def expected_uri(self, serial, key):
        return ("thermostat://provision?v=1&url=" + urllib.parse.quote(self.base, safe="") +
                "&serial=" + urllib.parse.quote(serial, safe="") + "&key=" + urllib.parse.quote(key, safe=""))

    def decode_qr(self, label):
        """Screenshots #qr and decodes it with zbarimg; returns the text."""
        self.b.find("#qr svg", visible=True)
        qr = self.b.find("#qr", visible=True)
        path = self.artifacts / (self.b.artifact_name(label) + ".png")
        path.write_bytes(qr.screenshot_as_png)
        result = subprocess.run(["zbarimg", "-q", "--raw", str(path)], capture_output=True, text=True, timeout=30)
        check(result.returncode == 0 and result.stdout.strip(),
              f"zbarimg found no QR code in #qr (status {result.returncode}, image {path.name}; "
              f"size {qr.size['width']}x{qr.size['height']} px)")
        decoded = result.stdout.rstrip("\n").split("\n")
        check(len(decoded) == 1, f"zbarimg found {len(decoded)} codes in #qr: {decoded}")
        return decoded[0]

    def key_page(self, serial, label):
        """The page shown after register or rotate: returns the key after checking URI and QR."""
        key = self.b.find("#api-key", visible=True).text.strip()
        check(len(key) >= 16 and " " not in key, f"#api-key does not look like a key: {key!r}")
        uri = self.b.text("#provisioning-uri")
        expected = self.expected_uri(serial, key)
        check(uri == expected, f"#provisioning-uri is {uri!r}, expected {expected!r}")
        decoded = self.decode_qr(f"qr {label}")
        check(decoded == uri, f"the QR code decodes to {decoded!r}, not #provisioning-uri {uri!r}")
        link = self.b.find("a#device-link").get_attribute("href")
        check(urllib.parse.urlsplit(link).path == f"/devices/{serial}",
              f"a#device-link goes to {link}, expected /devices/{serial}")
        self.b.shot(f"key page {label}")
        return key

    def device_row(self, serial):
        return self.b.find(f"table#devices tr[data-serial='{serial}']")

    def cell(self, serial, field):
        return self.b.driver.find_element(
            By.CSS_SELECTOR, f"table#devices tr[data-serial='{serial}'] td[data-field='{field}']").text.strip()

    def as_browser(self, method, path, body=None):
        """The JSON API with the browser's session cookie: (status, body)."""
        cookies = "; ".join(f"{c['name']}={c['value']}" for c in self.b.driver.get_cookies())
        return Api(self.base).call(method, path, body, headers={"Cookie": cookies}, cookies=False)

    def type_source(self, css, text):
        """Types text into a textarea as a user would (send_keys; a textarea adds no indent)."""
        element = self.b.find(css, visible=True)
        element.clear()
        element.send_keys(text)
        value = self.b.driver.execute_script("return arguments[0].value", element)
        check(value == text, f"{css} holds {value!r} after typing, expected {text!r}")

    def gutter_lines(self):
        """The line numbers app.js shows beside #source."""
        gutter = self.b.find("form#script-form .editor pre.gutter")
        return gutter.get_attribute("textContent").split()

    def script_status(self):
        status = self.b.find("#script-status")
        return status.text.strip(), (status.get_attribute("class") or "").split()

    def expect_status(self, expected):
        text, classes = self.script_status()
        check(text == expected and "script-status" in classes and expected in classes,
              f"#script-status shows {text!r} with class {classes}, expected {expected!r}")

    def dry_run_results(self):
        """Each pre in #dry-run-results parsed as JSON."""
        parsed = []
        for pre in self.b.driver.find_elements(By.CSS_SELECTOR, "#dry-run-report #dry-run-results pre"):
            text = pre.get_attribute("textContent")
            try:
                parsed.append(json.loads(text))
            except ValueError:
                raise Failure(f"a #dry-run-results pre is not JSON: {text[:200]!r}") from None
        return parsed

    def dry_run(self, device=""):
        """Submits form#dry-run-form for version 1 (device "" = the prefilled sample); returns
        (results, logs text)."""
        b = self.b
        Select(b.find("form#dry-run-form select#dry-run-version")).select_by_value("1")
        devices = Select(b.find("form#dry-run-form select#dry-run-device"))
        offered = [o.get_attribute("value") for o in devices.options]
        check(device in offered, f"select#dry-run-device offers {offered}, not {device!r}")
        devices.select_by_value(device)
        b.submit("form#dry-run-form", confirm=False)
        b.find("#dry-run-report", visible=True)
        errors = b.driver.find_elements(By.CSS_SELECTOR, "#dry-run-errors")
        check(not errors, f"the dry run failed: {errors[0].text if errors else ''!r}")
        logs = b.driver.find_elements(By.CSS_SELECTOR, "#dry-run-logs")
        b.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", b.find("#dry-run-report"))
        return self.dry_run_results(), (logs[0].get_attribute("textContent") if logs else "")

    def ingest_device(self):
        """(serial, key) of a device in the owner's tenant that can still ingest: the one from
        step 2 unless it was revoked, else one registered over the JSON API with the browser's
        session cookie."""
        if self.key:
            status, _ = self.samples.post(SERIAL, self.key, 18.0)
            if status == 200:
                return SERIAL, self.key
        if self.bench:
            return self.bench
        status, body = self.as_browser("POST", "/api/devices/register/",
                                       {"serial": SCRIPT_SERIAL, "name": "Script bench"})
        check(status == 201 and isinstance(body, dict) and body.get("api_key"),
              f"register {SCRIPT_SERIAL} with the browser's session: {status} {body}")
        self.samples.accepted(SCRIPT_SERIAL, body["api_key"], 18.0, f"the new {SCRIPT_SERIAL} key")
        self.bench = (SCRIPT_SERIAL, body["api_key"])
        return self.bench

    def stored_inside(self, serial, millis):
        """temp_inside_c of the raw sample stored at `millis` (ms since the epoch), read back
        through GET /api/telemetry/query/ with the browser's session cookie."""
        def stamp(ms):
            return datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"
        query = urllib.parse.urlencode({"device": serial, "from": stamp(millis - 1000),
                                        "to": stamp(millis + 1000), "limit": 100})
        status, body = self.as_browser("GET", f"/api/telemetry/query/?{query}")
        check(status == 200 and isinstance(body, dict), f"GET /api/telemetry/query/?{query}: {status} {body}")
        found = []
        for sample in body.get("samples") or []:
            text = str(sample.get("timestamp", "")).replace("Z", "+00:00")
            try:
                at = datetime.fromisoformat(text)
            except ValueError:
                continue
            if round(at.timestamp() * 1000) == millis:
                found.append(sample.get("temp_inside_c"))
        check(len(found) == 1, f"expected one stored sample at {stamp(millis)} for {serial}, found {found} "
                               f"in {json.dumps(body)[:600]}")
        return found[0]

    # Steps

    def signup(self):
        b = self.b
        b.go("/")
        b.at("/login")
        b.find("form#login-form")
        for css in ("input#email", "input#password", "form#login-form input[name=next]"):
            b.find(css)
        b.shot("login")
        # Phone width: a real mobile viewport (needs <meta name=viewport>), no sideways scrolling.
        b.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True})
        try:
            b.go("/login")
            b.find("form#login-form", visible=True)
            width, scroll = b.driver.execute_script(
                "return [document.documentElement.clientWidth, document.documentElement.scrollWidth]")
            check(width <= PHONE[0], f"/login at phone width lays out {width} px wide (no viewport meta?)")
            check(scroll <= width, f"/login at phone width scrolls sideways ({scroll} px content in {width} px)")
            for css in ("input#email", "input#password"):
                box = b.find(css).rect
                check(box["x"] >= 0 and box["x"] + box["width"] <= width,
                      f"{css} does not fit a {width} px wide screen: {box}")
            b.shot("login phone width")
        finally:
            b.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        b.go("/signup")
        b.fill("input#email", OWNER_EMAIL)
        b.fill("input#password", PASSWORD)
        b.fill("input#tenant_name", OWNER_TENANT)
        b.shot("signup")
        b.submit("form#signup-form", confirm=False)
        b.at("/")
        b.find("#no-devices", visible=True)
        nav = b.find("nav#main-nav")
        links = {urllib.parse.urlsplit(a.get_attribute("href") or "").path
                 for a in nav.find_elements(By.TAG_NAME, "a")}
        missing = {"/", "/alerts", "/scripts", "/tokens", "/members", "/account"} - links
        check(not missing, f"nav#main-nav lacks links to {sorted(missing)} (has {sorted(links)})")
        b.find("form#tenant-switcher select[name=tenant]")
        b.find("form#logout-form")
        b.shot("dashboard empty")
        return f"signed up as {OWNER_EMAIL}; /login fits {PHONE[0]} px"

    def add_device(self):
        b = self.b
        b.go("/")
        b.find("a#add-device", visible=True).click()
        b.at("/devices/new")
        b.fill("form#device-form input#serial", SERIAL)
        b.fill("form#device-form input#name", "Living room")
        b.fill("form#device-form input#location", "Ground floor")
        b.shot("new device")
        b.submit("form#device-form", confirm=False)
        self.key = self.key_page(SERIAL, "after register")
        self.samples.accepted(SERIAL, self.key, 20.5, "the new key")
        b.find("a#device-link").click()
        b.at(f"/devices/{SERIAL}")
        b.find("h1")
        check(self.key not in b.driver.page_source, f"the key appears again on /devices/{SERIAL}")
        b.go("/")
        self.device_row(SERIAL)
        check(b.absent("#no-devices"), "#no-devices still shown with a device")
        check(self.key not in b.driver.page_source, "the key appears again on /")
        b.shot("dashboard one device")
        return "key page, URI and QR agree; the key authenticates and is shown once"

    def live_updates(self):
        b = self.b
        b.go("/")
        self.device_row(SERIAL)
        b.marker_set()
        self.samples.accepted(SERIAL, self.key, 23.4, "a sample for /")
        b.until(lambda d: "23.4" in self.cell(SERIAL, "temp_inside_c"),
                "td[data-field=temp_inside_c] to show 23.4 on /", LIVE_WAIT)
        b.marker_kept("/")
        b.shot("dashboard live update")
        b.go(f"/devices/{SERIAL}")
        b.find("canvas#chart")
        before = b.until(lambda d: (lambda n: n if n and n >= 1 else None)(b.chart_points()),
                         "canvas#chart[data-point-count] ≥ 1")
        b.marker_set()
        self.samples.accepted(SERIAL, self.key, 24.6, "a sample for the device page")
        after = b.until(lambda d: (lambda n: n if n and n > before else None)(b.chart_points()),
                        f"canvas#chart[data-point-count] to grow past {before}", LIVE_WAIT)
        b.until(lambda d: "24.6" in d.find_element(By.CSS_SELECTOR, "#latest [data-field=temp_inside_c]").text,
                "#latest [data-field=temp_inside_c] to show 24.6", LIVE_WAIT)
        b.marker_kept(f"/devices/{SERIAL}")
        b.shot("device live update")
        return f"/ cell updated; chart points {before} → {after}, #latest updated, no reload"

    def range_links(self):
        b = self.b
        b.go(f"/devices/{SERIAL}")
        b.find("a[data-range='7d']", visible=True).click()
        b.until(lambda d: d.find_element(By.CSS_SELECTOR, "canvas#chart").get_attribute("data-range") == "7d",
                "canvas#chart[data-range=7d]")
        points = b.until(lambda d: (lambda n: n if n and n >= 1 else None)(b.chart_points()),
                         "canvas#chart[data-point-count] ≥ 1 for 7d")
        painted = b.until(lambda d: b.chart_painted(), "canvas#chart to be drawn for 7d")
        b.shot("device 7d")
        return f"7d: {points} points, {painted} pixels painted"

    def rename_rotate_revoke(self):
        b = self.b
        b.go(f"/devices/{SERIAL}")
        b.fill("form#rename-form input#name", "Hallway")
        b.submit("form#rename-form", confirm=False)
        if b.path() != f"/devices/{SERIAL}":  # the contract does not say where renaming lands
            b.go(f"/devices/{SERIAL}")
        b.until(lambda d: "Hallway" in d.find_element(By.TAG_NAME, "h1").text, "h1 to show the new name Hallway")
        b.shot("device renamed")
        old_key = self.key
        b.submit("form#rotate-form", confirm=True)
        new_key = self.key_page(SERIAL, "after rotate")
        check(new_key != old_key, "rotating showed the old key again")
        self.key = new_key
        self.samples.accepted(SERIAL, new_key, 21.0, "the rotated-in key")
        self.samples.accepted(SERIAL, old_key, 21.1, "the rotated-out key during its grace period")
        b.find("a#device-link").click()
        b.at(f"/devices/{SERIAL}")
        check(new_key not in b.driver.page_source, "the new key appears again on the device page")
        b.submit("form#revoke-form", confirm=True)
        b.shot("device revoked")
        self.samples.refused(SERIAL, new_key, "the new key after revoke")
        self.samples.refused(SERIAL, old_key, "the old key after revoke")
        return "renamed; rotated (new key and QR, old key in grace); revoked (both keys 401)"

    def scripts(self):
        b = self.b
        serial, key = self.ingest_device()
        self.samples.accepted(serial, key, 18.5, f"a newest sample of {serial}")
        b.go("/scripts")
        b.at("/scripts")
        b.find("#no-scripts", visible=True)
        for plugin in PLUGINS:
            b.find(f"article.plugin[data-plugin='{plugin}']")
        hooks = [o.get_attribute("value") for o in Select(b.find("form#script-form select#script-hook")).options]
        check(set(hooks) == {"ingest", "alert", "export", "storage_policy"},
              f"select#script-hook offers {hooks}")
        check(b.find("form#script-form textarea#config").get_attribute("value").strip() == "{}",
              "textarea#config does not default to {}")
        b.find("form#script-form .editor pre.gutter")
        b.shot("scripts empty")

        # A broken upload: Lua's error at line 4, in the message, the listing and the gutter.
        b.fill("form#script-form input#script-name", SCRIPT_NAME)
        Select(b.find("form#script-form select#script-hook")).select_by_value("ingest")
        self.type_source("form#script-form textarea#source", BROKEN_SCRIPT)
        numbers = self.gutter_lines()
        check(numbers == [str(n) for n in range(1, 6)], f"pre.gutter shows {numbers} for 5 typed lines")
        b.submit("form#script-form", confirm=False)
        b.at("/scripts")
        error = b.find(f"#script-error[data-line='{BROKEN_LINE}']", visible=True)
        check(error.text.strip().startswith(f"Line {BROKEN_LINE}:"),
              f"#script-error reads {error.text.strip()!r}, expected it to start with 'Line {BROKEN_LINE}:'")
        b.find(f"ol.source-listing li#source-line-{BROKEN_LINE}.error-line")
        marked = [li.get_attribute("id") for li in
                  b.driver.find_elements(By.CSS_SELECTOR, "ol.source-listing li.error-line")]
        check(marked == [f"source-line-{BROKEN_LINE}"], f"lines marked as the error: {marked}")
        kept = b.find("form#script-form textarea#source").get_attribute("value").replace("\r\n", "\n")
        check(kept == BROKEN_SCRIPT, f"textarea#source lost the upload: {kept!r}")
        numbers = self.gutter_lines()
        check(numbers == [str(n) for n in range(1, 6)], f"pre.gutter shows {numbers} beside the kept source")
        check(b.find("input#script-name").get_attribute("value") == SCRIPT_NAME, "input#script-name lost the name")
        check(b.absent("table#scripts tr[data-script-id]"), "a refused upload was listed in table#scripts")
        b.shot("script error at its line")
        error_text = error.text.strip()

        # The fix: stored as version 1, inactive.
        self.type_source("form#script-form textarea#source", FIXED_SCRIPT)
        numbers = self.gutter_lines()
        check(numbers == [str(n) for n in range(1, 8)], f"pre.gutter shows {numbers} for 7 typed lines")
        b.submit("form#script-form", confirm=False)
        check(re.fullmatch(r"/scripts/[0-9a-f-]{36}", b.path() or ""), f"the fixed upload landed on {b.driver.current_url}")
        script_id = b.path().rsplit("/", 1)[1]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(b.driver.current_url).query)
        check(query.get("notice") == ["script-uploaded"] and query.get("version") == ["1"],
              f"the fixed upload redirected to {b.driver.current_url}")
        b.find("#flash", visible=True)
        check(SCRIPT_NAME in b.text("h1"), f"h1 reads {b.text('h1')!r}")
        self.expect_status("inactive")
        b.find("table#versions tr[data-version='1'] form.activate-version")
        check(b.absent("form#deactivate-form"), "form#deactivate-form shown for an inactive script")
        b.find("form#script-form textarea#source")
        check(b.absent("form#script-form input#script-name") and b.absent("form#script-form select#script-hook"),
              "the detail page's editor asks for a name or hook")
        b.shot("script detail")

        # Dry run on the prefilled sample: inside temperature + 1, and the print output.
        prefilled = json.loads(b.find("form#dry-run-form textarea#dry-run-sample").get_attribute("value"))
        inside = prefilled["temp_inside_c"]
        results, logs = self.dry_run("")
        temps = [r.get("sample", {}).get("temp_inside_c") for r in results if isinstance(r, dict)]
        check(len(results) == 1 and results[0].get("outcome") == "accepted" and temps == [inside + 1],
              f"#dry-run-results for a sample at {inside}: {results}")
        check("seen" in logs and str(inside) in logs, f"#dry-run-logs reads {logs!r}")
        b.shot("script dry run report")

        # Dry run on the device's newest samples (18.0 and 18.5 were sent): each + 1.
        results, logs = self.dry_run(serial)
        temps = sorted(r.get("sample", {}).get("temp_inside_c") for r in results if isinstance(r, dict))
        check(results and 19.5 in temps, f"#dry-run-results on {serial}'s newest samples: {results}")
        check("seen" in logs, f"#dry-run-logs on {serial}'s samples reads {logs!r}")
        b.shot("script dry run device")

        # Activate version 1; a sample ingested at 19.0 is stored at 20.0.
        b.submit("table#versions tr[data-version='1'] form.activate-version", confirm=False)
        check(b.path() == f"/scripts/{script_id}", f"activating landed on {b.driver.current_url}")
        self.expect_status("active")
        b.find("form#deactivate-form")
        b.find("table#versions tr[data-version='1']")
        check(b.absent("table#versions tr[data-version='1'] form.activate-version"),
              "the active version still offers form.activate-version")
        b.shot("script active")
        self.samples.accepted(serial, key, 19.0, "a sample through the active script")
        stored = self.stored_inside(serial, self.samples.last_millis)
        check(stored == 20.0, f"a sample sent at 19.0 was stored at {stored}, expected 20.0 (the script on ingest)")

        # The list shows it, active.
        b.go("/scripts")
        row = b.find(f"table#scripts tr[data-script-id='{script_id}']")
        check(SCRIPT_NAME in row.text and "active" in row.text, f"table#scripts row reads {row.text!r}")
        check(b.absent("#no-scripts"), "#no-scripts still shown with a script")
        b.shot("scripts list")

        # Deactivate (confirmed): inactive again; ingest stores samples untouched.
        b.go(f"/scripts/{script_id}")
        b.submit("form#deactivate-form", confirm=True)
        check(b.path() == f"/scripts/{script_id}", f"deactivating landed on {b.driver.current_url}")
        self.expect_status("inactive")
        b.find("table#versions tr[data-version='1'] form.activate-version")
        self.samples.accepted(serial, key, 19.0, "a sample after deactivating")
        stored = self.stored_inside(serial, self.samples.last_millis)
        check(stored == 19.0, f"after deactivating, a sample sent at 19.0 was stored at {stored}")
        b.shot("script deactivated")
        return (f"error shown at line {BROKEN_LINE} ({error_text[:60]!r}); fixed upload inactive; dry runs "
                f"(sample {inside} → {inside + 1}, {serial}'s newest: {len(temps)} results); active: 19.0 "
                f"stored as 20.0; deactivated: 19.0 stored as 19.0")

    def tokens(self):
        b = self.b
        name = "browser-suite"
        b.go("/tokens")
        b.fill("form#token-form input#token-name", name)
        b.submit("form#token-form", confirm=False)
        secret = b.find("#token-secret", visible=True).text.strip()
        check(len(secret) >= 16 and " " not in secret, f"#token-secret does not look like a secret: {secret!r}")
        b.shot("token created")
        api = Api(self.base)
        status, body = api.call("GET", "/api/devices/", headers={"Authorization": f"Bearer {secret}"}, cookies=False)
        check(status == 200, f"GET /api/devices/ with the new token: {status} {body}")
        b.go("/tokens")
        check(secret not in b.driver.page_source, "the token secret appears again on /tokens")
        rows = [row for row in b.driver.find_elements(By.CSS_SELECTOR, "table#tokens tr[data-token-id]")
                if name in row.text]
        check(len(rows) == 1, f"expected one row for {name} in table#tokens, found {len(rows)}")
        token_id = rows[0].get_attribute("data-token-id")
        b.submit(f"table#tokens tr[data-token-id='{token_id}'] form.revoke-token", confirm=None)
        b.shot("token revoked")
        status, body = api.call("GET", "/api/devices/", headers={"Authorization": f"Bearer {secret}"}, cookies=False)
        check(status == 401, f"GET /api/devices/ with the revoked token: {status} {body}, expected 401")
        return f"token {token_id}: shown once, 200 as Bearer, 401 after revoke"

    def open_alert_row(self, alert_id):
        return self.b.find(f"table#open-alerts tr[data-alert-id='{alert_id}']")

    def poll_page(self, path, css, what, timeout=LIVE_WAIT):
        """Reloads `path` until `css` matches (evaluation and delivery run in the background);
        returns the first match."""
        b = self.b

        def found(driver):
            b.go(path)
            matches = driver.find_elements(By.CSS_SELECTOR, css)
            return matches[0] if matches else None
        return b.until(found, what, timeout)

    def webhook(self, receiver, secret, predicate, what):
        """The first request the receiver got that satisfies predicate(json), checked signed."""
        requests = self.b.until(lambda d: receiver.matching(predicate), what, LIVE_WAIT)
        request = requests[0]
        check(request["signature"], f"{what}: no X-Thermostat-Signature header")
        check(WebhookReceiver.signed(request, secret),
              f"{what}: X-Thermostat-Signature {request['signature']!r} does not verify with the secret shown")
        return request

    def alerts(self):
        b = self.b
        serial, key = self.ingest_device()
        receiver = WebhookReceiver()
        try:
            # A webhook channel: the secret is shown once; "Send test" arrives signed.
            b.go("/alerts")
            b.at("/alerts")
            b.find("#no-open-alerts", visible=True)
            b.go("/alerts/channels")
            b.find("#no-channels", visible=True)
            Select(b.find("form#channel-form select#channel-kind")).select_by_value("webhook")
            b.fill("form#channel-form input#channel-name", CHANNEL_NAME)
            b.fill("form#channel-form input#channel-url", receiver.url)
            b.shot("alert channel form")
            b.submit("form#channel-form", confirm=False)
            secret = b.find("code#webhook-secret", visible=True).text.strip()
            check(len(secret) >= 16 and " " not in secret, f"code#webhook-secret does not look like a secret: {secret!r}")
            rows = b.driver.find_elements(By.CSS_SELECTOR, "table#channels tr[data-channel-id][data-kind='webhook']")
            check(len(rows) == 1 and CHANNEL_NAME in rows[0].text and receiver.url in rows[0].text,
                  f"table#channels lists {[r.text for r in rows]}")
            channel_id = rows[0].get_attribute("data-channel-id")
            b.shot("alert channel created")
            b.go("/alerts/channels")
            check(secret not in b.driver.page_source, "the webhook secret appears again on /alerts/channels")
            b.submit(f"table#channels tr[data-channel-id='{channel_id}'] form.test-channel", confirm=False)
            notice = b.find("#flash", visible=True).text.strip()
            check(notice.startswith("Test sent"), f"after Send test #flash reads {notice!r}")
            self.webhook(receiver, secret, lambda j: j.get("event") == "test", "the test webhook")
            b.find(f"table#deliveries tr[data-event='test'][data-status='sent']")
            b.shot("alert channel test sent")

            # The rule form: a JSON error in config is a 422 at the field, the form kept.
            b.go("/alerts/rules")
            b.find("#no-rules", visible=True)
            check(b.find("form#rule-form textarea#rule-config").get_attribute("value").strip() == "{}",
                  "textarea#rule-config does not default to {}")
            check(b.find("form#rule-form input#rule-cooldown").get_attribute("value") == "900",
                  "input#rule-cooldown does not default to 900")
            for css in ("input#rule-enabled", "input#rule-notify-resolved"):
                check(b.find(f"form#rule-form {css}").is_selected(), f"{css} is not checked by default")
            scripts = [o.get_attribute("value") for o in Select(b.find("form#rule-form select#rule-script")).options]
            check("threshold" in scripts, f"select#rule-script offers {scripts}")
            b.fill("form#rule-form input#rule-name", RULE_NAME)
            Select(b.find("form#rule-form select#rule-script")).select_by_value("threshold")
            Select(b.find("form#rule-form select#rule-device")).select_by_value(serial)
            self.type_source("form#rule-form textarea#rule-config", '{"high_c": 25')
            box = b.find(f"form#rule-form input[name=channels][value='{channel_id}']")
            if not box.is_selected():
                box.click()
            b.submit("form#rule-form", confirm=False)
            b.at("/alerts/rules")
            b.find("#rule-error[data-field='config']", visible=True)
            check(b.find("form#rule-form input#rule-name").get_attribute("value") == RULE_NAME,
                  "input#rule-name lost the name after a refused save")
            check(b.find(f"form#rule-form input[name=channels][value='{channel_id}']").is_selected(),
                  "the channel checkbox lost its tick after a refused save")
            check(Select(b.find("form#rule-form select#rule-device")).first_selected_option.get_attribute("value") == serial,
                  "select#rule-device lost the device after a refused save")
            check(b.absent("table#rules tr[data-rule-id]"), "a refused rule was listed in table#rules")
            b.shot("alert rule config error")
            self.type_source("form#rule-form textarea#rule-config", '{"high_c": 25}')
            b.submit("form#rule-form", confirm=False)
            b.at("/alerts/rules")
            b.find("#flash", visible=True)
            rows = b.driver.find_elements(By.CSS_SELECTOR, "table#rules tr[data-rule-id]")
            check(len(rows) == 1 and RULE_NAME in rows[0].text and CHANNEL_NAME in rows[0].text and serial in rows[0].text,
                  f"table#rules lists {[r.text for r in rows]}")
            rule_id = rows[0].get_attribute("data-rule-id")
            b.go(f"/alerts/rules/{rule_id}")
            config = json.loads(b.find("form#rule-form textarea#rule-config").get_attribute("value"))
            check(config == {"high_c": 25}, f"the saved rule's config reads {config}")
            b.shot("alert rule saved")

            # A hot sample fires it: listed as firing, and a signed "firing" webhook.
            self.samples.accepted(serial, key, HOT, "a hot sample")
            row = self.poll_page("/alerts", "table#open-alerts tr[data-alert-id][data-state='firing']",
                                 "table#open-alerts to list a firing alert")
            alert_id = row.get_attribute("data-alert-id")
            text = row.text
            check(serial in text and RULE_NAME in text and "high" in text and str(HOT) in text,
                  f"the firing row reads {text!r}")
            b.shot("alert firing")
            firing = self.webhook(receiver, secret,
                                  lambda j: j.get("event") == "firing" and j.get("alert") == alert_id,
                                  "a signed firing webhook")
            payload = firing["json"]
            check(payload.get("device") == serial and payload.get("rule") == RULE_NAME and payload.get("key") == "high",
                  f"the firing webhook carries {payload}")

            # Acknowledged in the UI.
            b.submit(f"table#open-alerts tr[data-alert-id='{alert_id}'] form.ack-alert", confirm=False)
            b.at("/alerts")
            b.find("#flash", visible=True)
            acknowledged = b.find(f"table#open-alerts tr[data-alert-id='{alert_id}'] td[data-field='acknowledged']").text
            check(OWNER_EMAIL in acknowledged, f"the acknowledged cell reads {acknowledged!r}")
            check(b.absent(f"table#open-alerts tr[data-alert-id='{alert_id}'] form.ack-alert"),
                  "an acknowledged alert still offers form.ack-alert")
            b.shot("alert acknowledged")

            # Its page: the delivery log. The device page lists it.
            self.poll_page(f"/alerts/{alert_id}", "table#deliveries tr[data-event='firing'][data-status='sent']",
                           "the firing delivery to be logged as sent", WAIT)
            b.find(f"#alert-detail[data-alert-id='{alert_id}'][data-state='firing']")
            b.shot("alert detail")
            b.go(f"/devices/{serial}")
            b.find(f"section#device-alerts tr[data-alert-id='{alert_id}'][data-state='firing']")
            b.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", b.find("section#device-alerts"))
            b.shot("device alerts")

            # Silence the device for an hour from the row, then remove the silence.
            b.go("/alerts")
            b.submit(f"table#open-alerts tr[data-alert-id='{alert_id}'] form.silence-device", confirm=False)
            b.at("/alerts")
            silence = b.find(f"table#silences tr[data-device='{serial}']")
            silence_id = silence.get_attribute("data-silence-id")
            b.shot("alert silence")
            b.submit(f"table#silences tr[data-silence-id='{silence_id}'] form.remove-silence", confirm=None)
            b.at("/alerts")
            b.find("#no-silences", visible=True)

            # A cool sample resolves it: in the history, and a signed "resolved" webhook.
            self.samples.accepted(serial, key, COOL, "a cool sample")
            self.poll_page("/alerts", f"table#alert-history tr[data-alert-id='{alert_id}'][data-state='resolved']",
                           "table#alert-history to list the resolved alert")
            check(b.absent(f"table#open-alerts tr[data-alert-id='{alert_id}']"), "the resolved alert is still open")
            self.webhook(receiver, secret, lambda j: j.get("event") == "resolved" and j.get("alert") == alert_id,
                         "a signed resolved webhook")
            b.shot("alert resolved")
            events = [r["json"].get("event") for r in receiver.matching(lambda j: True)]
        finally:
            receiver.stop()
        return (f"webhook channel {channel_id} (secret shown once, test signed); config error 422 at the field; "
                f"rule {rule_id}; {HOT} fired alert {alert_id} (firing, signed webhook), acknowledged, on the device "
                f"page, silenced and unsilenced; {COOL} resolved it; the receiver got {events}")

    def tenant_switch(self):
        b = self.b
        other = self.other = Api(self.base)
        status, body = other.call("POST", "/api/auth/register/",
                                  {"email": OTHER_EMAIL, "password": PASSWORD, "tenant_name": OTHER_TENANT})
        check(status == 201, f"register {OTHER_EMAIL}: {status} {body}")
        slug = body["tenant"]["slug"]
        status, body = other.call("POST", "/api/devices/register/", {"serial": OTHER_SERIAL, "name": "Porch"})
        check(status == 201, f"register {OTHER_SERIAL}: {status} {body}")
        status, body = other.call("POST", "/api/tenant/invitations/", {"email": OWNER_EMAIL, "role": "member"})
        check(status == 201, f"invite {OWNER_EMAIL} to {OTHER_TENANT}: {status} {body}")
        invitation = body["invitation"]["id"]
        b.go("/account")
        b.find(f"#received-invitations li[data-invitation-id='{invitation}']")
        check(OTHER_TENANT in b.find("#received-invitations").text, f"{OTHER_TENANT} is not named in the invitation")
        b.shot("invitation received")
        b.submit(f"#received-invitations li[data-invitation-id='{invitation}'] form.accept-invitation", confirm=False)
        b.at("/account")
        b.find("#flash")
        check(b.absent("#received-invitations"), "the accepted invitation is still listed")
        b.go("/")
        select = Select(b.find("form#tenant-switcher select[name=tenant]"))
        values = [option.get_attribute("value") for option in select.options]
        check(slug in values, f"form#tenant-switcher offers {values}, not {slug}")
        select.select_by_value(slug)
        try:
            b.submit("form#tenant-switcher", confirm=False)
        except StaleElementReferenceException:
            pass  # the switcher submitted itself on change; the page is already the next one
        b.at("/")
        b.find(f"table#devices tr[data-serial='{OTHER_SERIAL}']")
        check(b.absent(f"tr[data-serial='{SERIAL}']"), f"{SERIAL} of the first tenant still listed")
        shown = Select(b.find("form#tenant-switcher select[name=tenant]")).first_selected_option
        check(shown.get_attribute("value") == slug, f"the switcher shows {shown.text!r} after switching")
        check(OTHER_TENANT in b.find("nav#main-nav").text or OTHER_TENANT in shown.text,
              f"{OTHER_TENANT} is not named in the nav or the switcher")
        b.shot("switched tenant")
        b.go("/")
        b.find(f"table#devices tr[data-serial='{OTHER_SERIAL}']")
        check(b.absent(f"tr[data-serial='{SERIAL}']"), "the switch did not last to the next page")
        return f"switched to {slug}: its device {OTHER_SERIAL} shown, {SERIAL} not"

    def viewer(self):
        """In the other tenant: a member sees the device controls but no script editor; made a
        viewer over the JSON API, none of them."""
        b = self.b
        other = self.other
        status, body = other.call("POST", "/api/scripts/", {"name": "porch-check", "hook": "ingest",
                                                             "source": FIXED_SCRIPT})
        check(status == 201 and isinstance(body, dict), f"upload a script as {OTHER_EMAIL}: {status} {body}")
        script_id = (body.get("script") or {}).get("id")
        check(script_id, f"the upload answered no script id: {body}")
        status, body = other.call("POST", f"/api/scripts/{script_id}/activate/", {})
        check(status == 200, f"activate {OTHER_EMAIL}'s script: {status} {body}")

        def pages(role):
            b.go("/")
            b.at("/")
            who = b.text(".session .who")
            check(who.endswith(role), f"the header names the role {who!r}, expected {role!r}")
            b.find(f"table#devices tr[data-serial='{OTHER_SERIAL}']")
            shown = {"a#add-device": not b.absent("a#add-device")}
            b.shot(f"{role} dashboard")
            b.go(f"/devices/{OTHER_SERIAL}")
            b.find("canvas#chart")
            for css in ("form#rename-form", "form#rotate-form", "form#revoke-form"):
                shown[css] = not b.absent(css)
            b.shot(f"{role} device")
            b.go("/scripts")
            b.find(f"table#scripts tr[data-script-id='{script_id}']")
            shown["form#script-form on /scripts"] = not b.absent("form#script-form")
            b.go(f"/scripts/{script_id}")
            self.expect_status("active")
            b.find("form#dry-run-form")
            shown["form#script-form on the script"] = not b.absent("form#script-form")
            shown["form#deactivate-form"] = not b.absent("form#deactivate-form")
            shown["form.activate-version"] = not b.absent("form.activate-version")
            b.shot(f"{role} script")
            b.go("/alerts")
            b.find("#no-open-alerts")
            shown["form#silence-form"] = not b.absent("form#silence-form")
            b.go("/alerts/rules")
            b.find("#no-rules")
            shown["form#rule-form"] = not b.absent("form#rule-form")
            b.go("/alerts/channels")
            b.find("#no-channels")
            shown["form#channel-form"] = not b.absent("form#channel-form")
            b.shot(f"{role} alert channels")
            return shown

        member = pages("member")
        expected = {"a#add-device": True, "form#rename-form": True, "form#rotate-form": True,
                    "form#revoke-form": True, "form#script-form on /scripts": False,
                    "form#script-form on the script": False, "form#deactivate-form": False,
                    "form.activate-version": False, "form#silence-form": True, "form#rule-form": False,
                    "form#channel-form": False}
        wrong = {css: shown for css, shown in member.items() if shown != expected[css]}
        check(not wrong, "as a member: " + ", ".join(
            f"{css} {'shown' if shown else 'missing'}" for css, shown in wrong.items()))
        status, body = other.call("POST", "/api/tenant/members/", {"email": OWNER_EMAIL, "role": "viewer"})
        check(status in (200, 201), f"make {OWNER_EMAIL} a viewer in {OTHER_TENANT}: {status} {body}")
        viewer = pages("viewer")
        shown = [css for css, present in viewer.items() if present]
        check(not shown, "as a viewer the pages show " + ", ".join(shown))
        status, body = self.as_browser("POST", "/api/devices/register/", {"serial": "TH-B901"})
        check(status == 403, f"a viewer registering a device over the API: {status} {body}, expected 403")
        return ("member: device controls and silences, no script editor or alert rule/channel editors; viewer: no "
                "add-device, rename/rotate/revoke, script editor, activate or deactivate, silence form (API write 403)")

    def logout(self):
        b = self.b
        b.go("/")
        cookies = {c["name"]: c["value"] for c in b.driver.get_cookies()}
        b.submit("form#logout-form", confirm=False)
        b.at("/login")
        b.shot("logged out")
        b.go("/")
        b.at("/login")
        api = Api(self.base)
        status, body = api.call("GET", "/api/auth/me/", cookies=False,
                                headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
        check(status == 401, f"/api/auth/me/ with the logged-out session cookie: {status} {body}")
        return "logout lands on /login; / redirects there; the old session is 401"

    def console_clean(self):
        problems, noticed = [], []
        for step, entry in self.b.console:
            message = entry.get("message", "")
            source = entry.get("source", "")
            line = f"[{step}] {entry.get('level')} {source}: {message}"
            if "Content Security Policy" in message:
                problems.append(line)
            elif entry.get("level") == "SEVERE" and source == "javascript":
                problems.append(line)
            elif entry.get("level") in ("SEVERE", "WARNING"):
                noticed.append(line)
        for line in noticed:
            self.note("console (not failing): " + line)
        check(not problems, f"{len(problems)} CSP violations or JS errors:\n" + "\n".join(problems))
        return f"{len(self.b.console)} console entries, no CSP violation or JS error" + (
            f" ({len(noticed)} other warnings/errors listed below)" if noticed else "")


STEPS = [
    # (number, name, method, steps it needs)
    (1, "sign up", "signup", ()),
    (2, "add a device: key, URI, QR", "add_device", (1,)),
    (3, "live updates", "live_updates", (2,)),
    (4, "range links", "range_links", (2,)),
    (5, "rename, rotate, revoke", "rename_rotate_revoke", (2,)),
    (6, "scripts: error at its line, fix, dry-run, activate", "scripts", (1,)),
    (7, "API tokens", "tokens", (1,)),
    (8, "alerts: channel, rule, firing webhook, acknowledge", "alerts", (1,)),
    (9, "tenant switch", "tenant_switch", (1,)),
    (10, "viewer: read-only pages", "viewer", (9,)),
    (11, "logout", "logout", (1,)),
    (12, "console: CSP and JS errors", "console_clean", ()),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.environ.get("THERMOSTAT_BIN", str(REPOSITORY / ".build/release/thermostat")))
    parser.add_argument("--artifacts", default=str(REPOSITORY / ".build/browser-artifacts"))
    args = parser.parse_args()
    binary = Path(args.binary).absolute()
    if not binary.exists():
        print(f"no binary at {binary}")
        return 2
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not Path(tool).exists():
            print(f"missing {tool} (Debian chromium, chromium-driver)")
            return 2
    if not shutil.which("zbarimg"):
        print("missing zbarimg (Debian zbar-tools)")
        return 2
    artifacts = Path(args.artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    for old in artifacts.iterdir():  # only what an earlier run of this suite left
        if old.is_file() and (re.match(r"(FAILED-)?\d\d+-.*\.(png|html)$", old.name)
                              or old.name in ("server.log", "browser-console.log")):
            old.unlink()
    # SIGTERM (e.g. make interrupted) still stops the server and the browser.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    built = datetime.fromtimestamp(binary.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"Browser suite: {binary} (built {built}), artifacts in {artifacts}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="thermostat-browser-"))
    try:
        return run(binary, artifacts, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(binary, artifacts, workdir):
    results = {}
    server = browser = suite = None
    started = time.monotonic()
    setup_error = None
    try:
        try:
            server = Server(str(binary), workdir)
            print(f"  server on {server.url}", flush=True)
            browser = Browser(server.url, artifacts, workdir)
            print(f"  {browser.driver.capabilities.get('browserName')} "
                  f"{browser.driver.capabilities.get('browserVersion')} headless", flush=True)
        except Exception as error:
            setup_error = str(error) if isinstance(error, Failure) else traceback.format_exc()
        suite = Suite(server, browser, artifacts) if setup_error is None else None
        for number, name, method, needs in STEPS:
            began = time.monotonic()
            if setup_error is not None:
                results[number] = ("FAIL", "not run: setup failed" + (f": {setup_error}" if number == 1 else ""), 0.0)
            elif any(results[n][0] != "PASS" for n in needs):
                results[number] = ("FAIL", "not run: needs step " + ", ".join(
                    str(n) for n in needs if results[n][0] != "PASS"), 0.0)
            else:
                try:
                    detail = getattr(suite, method)()
                    results[number] = ("PASS", detail, time.monotonic() - began)
                except Exception as error:  # one step's failure must not hide the others
                    detail = str(error) if isinstance(error, Failure) else traceback.format_exc()
                    saved = browser.save_failure(f"step {number} {name}")
                    results[number] = ("FAIL", f"{detail}\nsaved: {', '.join(saved)}", time.monotonic() - began)
                browser.drain_console(number)
            verdict, detail, seconds = results[number]
            print(f"  {verdict}  {number}. {name} ({seconds:.1f} s)", flush=True)
    finally:
        if browser:
            browser.drain_console("end")
            with open(artifacts / "browser-console.log", "w") as out:
                for step, entry in browser.console:
                    out.write(f"[{step}] {json.dumps(entry)}\n")
            browser.quit()
        stopped = server.stop() if server else "server not started"
        if (workdir / "server.log").exists():
            shutil.copy(workdir / "server.log", artifacts / "server.log")

    print(f"\nBrowser suite (release binary {binary}), {time.monotonic() - started:.0f} s; {stopped}")
    for number, name, method, needs in STEPS:
        verdict, detail, seconds = results[number]
        print(f"  {verdict}  {number}. {name}")
        print("        " + detail.replace("\n", "\n        "))
    if suite and suite.notes:
        print("  notes:")
        for note in suite.notes:
            print("        " + note)
    failed = sum(1 for verdict, _, _ in results.values() if verdict != "PASS")
    passed = len(results) - failed
    if failed and server:
        print(f"server log tail ({artifacts / 'server.log'}):\n{server.log_tail()}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
