"""Opens pages in one headless Chromium and waits until each page's title
is what it should become, over the DevTools protocol (driven with the
`websockets` package).

usage: browser_pages.py CHROMIUM TIMEOUT_S URL=TITLE [URL=TITLE ...]

Exits 0 once every page shows its title, 1 (printing each page's title
and text) when the time is up, 2 when Chromium does not start.
"""

import asyncio
import itertools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time

import websockets


async def main(chromium, timeout, pages):
    profile = tempfile.mkdtemp(prefix="shardloop-chromium-")
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--remote-debugging-port=0",
         "--user-data-dir=" + profile, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = None
        started = time.monotonic()
        while endpoint is None and time.monotonic() - started < 30:
            line = proc.stderr.readline()
            if not line:
                break
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                endpoint = m.group(1)
        if endpoint is None:
            print("chromium did not start", file=sys.stderr)
            return 2
        async with websockets.connect(endpoint, max_size=None) as cdp:
            ids = itertools.count(1)
            replies = {}

            async def call(method, params=None, session=None):
                n = next(ids)
                msg = {"id": n, "method": method, "params": params or {}}
                if session:
                    msg["sessionId"] = session
                await cdp.send(json.dumps(msg))
                while n not in replies:
                    got = json.loads(await cdp.recv())
                    if "id" in got:
                        replies[got["id"]] = got
                reply = replies.pop(n)
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

            sessions = []
            for url, title in pages:
                target = await call("Target.createTarget", {"url": url})
                attached = await call("Target.attachToTarget",
                                      {"targetId": target["targetId"], "flatten": True})
                sessions.append((attached["sessionId"], url, title))

            async def evaluate(session, expr):
                r = await call("Runtime.evaluate", {"expression": expr}, session)
                return r["result"].get("value")

            deadline = time.monotonic() + timeout
            while True:
                titles = [await evaluate(s, "document.title") for s, _, _ in sessions]
                if all(t == want for t, (_, _, want) in zip(titles, sessions)):
                    print("all pages show their titles:", titles)
                    return 0
                if time.monotonic() > deadline:
                    for (s, url, want), t in zip(sessions, titles):
                        text = await evaluate(s, "document.body ? document.body.innerText : ''")
                        print(f"{url}: title {t!r}, wanted {want!r}; text:\n{text}")
                    return 1
                await asyncio.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    chromium, timeout = sys.argv[1], float(sys.argv[2])
    pages = [tuple(arg.rsplit("=", 1)) for arg in sys.argv[3:]]
    sys.exit(asyncio.run(main(chromium, timeout, pages)))
