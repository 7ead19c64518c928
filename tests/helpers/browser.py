"""Open a local page in the system's headless Chromium and report what it did, with no extra packages.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``: it reads
commands on fd 3 and writes replies and events on fd 4, NUL-terminated JSON), so no websocket client,
driver or browser download is needed. ``render(url, png)`` loads the page, waits until it is drawn,
saves a screenshot and returns the JavaScript errors, console errors and the URLs the page requested.
WebGL runs on SwiftShader (software), as there is no GPU.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless", "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",  # software WebGL: no GPU here
    "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing outside this machine: the page must not need it
)


def find_chromium() -> str | None:
    """The path of a Chromium/Chrome executable on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class ChromiumError(RuntimeError):
    """Chromium did not answer in time, or the page did not get ready."""


class ChromiumUnavailable(ChromiumError):
    """No usable Chromium: none on PATH, or it failed before the page was opened."""


@dataclass
class PageReport:
    screenshot: Path
    errors: list[str] = field(default_factory=list)  # uncaught exceptions, console.error, error log entries
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    webgl: bool = False  # whether the browser offers WebGL at all
    measured: object = None  # the value of ``measure`` (JSON-able), evaluated in the drawn page


class _Pipe:
    """The DevTools protocol over Chromium's pipe: commands out, replies and events in."""

    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int):
        self.proc, self.out, self.inp = proc, to_browser, from_browser
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []
        self.selector = selectors.DefaultSelector()
        self.selector.register(from_browser, selectors.EVENT_READ)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise ChromiumError("Chromium did not answer in time")
            chunk = os.read(self.inp, 1 << 20)
            if not chunk:
                raise ChromiumError(f"Chromium closed its DevTools pipe (exit code {self.proc.poll()})")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))


def _evaluate(pipe: _Pipe, session: str, expression: str, timeout: float = 30):
    result = pipe.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                            "returnByValue": True}, session, timeout=timeout)
    if "exceptionDetails" in result:
        raise ChromiumError(f"{expression!r} failed: {result['exceptionDetails']}")
    return result["result"].get("value")


def _errors(events: list[dict]) -> list[str]:
    """The page's JavaScript errors among the protocol events, one line each."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            found.append("uncaught: " + details.get("exception", {}).get("description", details.get("text", "")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                      for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            found.append(f"log ({params['entry'].get('source')}): {params['entry'].get('text')}")
    return found


def render(url: str, screenshot: Path, ready: str, measure: str = "null", width: int = 1400,
           height: int = 800, timeout: float = 60, executable: str | None = None) -> PageReport:
    """Load ``url``, wait until the JavaScript expression ``ready`` is true, then wait two frames,
    save a PNG screenshot of the ``width`` x ``height`` viewport and evaluate ``measure`` (e.g.
    where elements are); report the page's errors and requests."""
    executable = executable or find_chromium()
    if executable is None:
        raise ChromiumUnavailable("no Chromium executable on PATH (" + ", ".join(CANDIDATES) + ")")
    profile = tempfile.mkdtemp(prefix="cebra-chromium-")
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    # Chromium reads commands from fd 3 and writes to fd 4: move its ends above 10 first, so that
    # the child's dup2 onto 3 and 4 cannot overwrite one with the other.
    child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
    child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(to_browser_r)
    os.close(from_browser_w)
    log = tempfile.TemporaryFile()
    argv = [executable, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(3, 4),
        preexec_fn=lambda: (os.dup2(child_r, 3), os.dup2(child_w, 4)),
    )
    os.close(child_r)
    os.close(child_w)
    pipe = _Pipe(proc, to_browser_w, from_browser_r)
    opened = False
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})
        session = pipe.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        webgl = bool(_evaluate(pipe, session, "!!document.createElement('canvas').getContext('webgl')"))
        pipe.events.clear()  # only the page's own events from here on
        opened = True
        pipe.send("Page.navigate", {"url": url}, session)
        pipe.wait_event("Page.loadEventFired", timeout)
        deadline = time.monotonic() + timeout
        while not _evaluate(pipe, session, f"Boolean({ready})"):
            if time.monotonic() > deadline:
                raise ChromiumError(f"the page was not ready ({ready}) within {timeout} s")
            time.sleep(0.2)
        _evaluate(pipe, session, "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session, timeout=timeout)
        screenshot = Path(screenshot)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        measured = _evaluate(pipe, session, measure)
        requests = [e["params"]["request"]["url"] for e in pipe.events if e.get("method") == "Network.requestWillBeSent"]
        return PageReport(screenshot, _errors(pipe.events), requests, webgl, measured)
    except (ChromiumError, OSError) as err:  # OSError: a broken pipe when Chromium died
        log.seek(0)
        raise (ChromiumError if opened else ChromiumUnavailable)(f"{err}; Chromium's output:\n{log.read().decode(errors='replace')[-3000:]}") from err
    finally:
        try:
            pipe.send("Browser.close", timeout=5)
        except (ChromiumError, OSError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        os.close(to_browser_w)
        os.close(from_browser_r)
        shutil.rmtree(profile, ignore_errors=True)
