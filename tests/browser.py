"""A headless Chromium driven over the DevTools protocol (aiohttp's websocket client), for the Web UI
tests: open a page, wait until its text shows something, set the page's local storage, take a
screenshot. `chromium --screenshot` alone cannot do these: it waits for a virtual-time budget
that a running workflow's page (which keeps refreshing) never lets pass."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from tests.helpers import eventually

__all__ = ["Browser", "chromium"]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with one page, `width` x `height` CSS pixels."""

    def __init__(self, binary: str, profile: Path, width: int = 1400, height: int = 900) -> None:
        self.binary = binary
        self.profile = profile
        self.width = width
        self.height = height
        self._proc: subprocess.Popen[bytes] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        self.profile.mkdir(parents=True, exist_ok=True)
        port_file = self.profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [
                self.binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",  # Chromium picks a free port and writes it to port_file
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        async def read_port() -> str:
            return port_file.read_text() if port_file.exists() else ""

        text = await eventually(read_port, lambda t: "\n" in t, 30, 0.1, what="Chromium's DevTools port")
        port = text.split("\n", 1)[0]
        self._http = aiohttp.ClientSession()
        async with self._http.get(f"http://127.0.0.1:{port}/json/list") as response:
            targets = await response.json()
        [page] = [t for t in targets if t["type"] == "page"]
        self._ws = await self._http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.enable")
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                await asyncio.to_thread(self._proc.wait, 10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events in between are dropped)."""
        assert self._ws is not None
        call_id = next(self._ids)
        await self._ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self._ws.receive(), 60)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"DevTools connection ended: {message.type}")
            data = json.loads(message.data)
            if data.get("id") == call_id:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                result: dict[str, Any] = data.get("result", {})
                return result

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def text(self) -> str:
        """What the page shows, as text: the page's `innerText`, then the text of every frame in it
        (the Web UI renders markdown, such as a workflow's details, in sandboxed iframes that the
        page's own scripts cannot read, so the DOM is read through DevTools instead)."""
        value = await self.evaluate("document.body ? document.body.innerText : ''")
        tree = await self.call("DOM.getDocument", depth=-1, pierce=True)
        frames: list[str] = []
        _frame_texts(tree["root"], frames)
        return "\n".join([str(value or ""), *frames])

    async def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        """Wait until the page's text contains every needle; the error shows the page's text."""
        return await eventually(
            self.text, lambda t: all(n in t for n in needles), timeout, 0.5, what=f"page shows {needles}"
        )

    async def screenshot(self, path: Path) -> int:
        """Save the viewport as PNG; returns its size in bytes."""
        data = base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"])
        path.write_bytes(data)
        return len(data)


def _frame_texts(node: dict[str, Any], out: list[str]) -> None:
    """Collect the text nodes inside iframes' documents (one string per frame document)."""
    if node.get("nodeName") in ("SCRIPT", "STYLE"):
        return
    content = node.get("contentDocument")
    if content is not None:
        parts: list[str] = []
        _text_nodes(content, parts)
        out.append(" ".join(p for p in parts if p))
    for child in node.get("children", []):
        _frame_texts(child, out)


def _text_nodes(node: dict[str, Any], out: list[str]) -> None:
    if node.get("nodeName") in ("SCRIPT", "STYLE"):
        return
    if node.get("nodeType") == 3:
        out.append(str(node.get("nodeValue", "")).strip())
    for child in node.get("children", []):
        _text_nodes(child, out)
    content = node.get("contentDocument")
    if content is not None:
        _text_nodes(content, out)
