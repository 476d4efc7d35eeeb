"""``/docs`` renders in a real headless Chromium on a machine without internet access: Swagger
UI's JavaScript, CSS and favicon are served by the API itself (api/docs.py), not by a CDN.

The browser resolves no host but 127.0.0.1 (``--host-resolver-rules``), so the page renders
only if everything it needs comes from this server, whether or not the machine is online.

Chromium is Debian's ``chromium`` package; ``make test`` installs it (scripts/ensure-services.sh).
Without it this test installs it when running as root, fails on CI, and is skipped otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.integration.system import ROOT, free_port, wait_http

pytestmark = pytest.mark.e2e

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
OPERATION = "/api/v1/bria/image/generation/generate-image"
EXTERNAL = ("http://", "https://", "//cdn", "cdn.", "jsdelivr", "unpkg", "googleapis", "cdnjs")
SWAGGER_POST_GREEN = (73, 204, 144)  # Swagger UI's colour for POST operations (#49cc90)


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = _find_browser()
    if path:
        return path
    if os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        done = subprocess.run(["bash", "-c", "apt-get update -qq && apt-get install -y -qq chromium"],
                              capture_output=True, text=True, env=env, timeout=1200)
        path = _find_browser()
        if path:
            return path
        reason = f"chromium is not installed and apt-get could not install it:\n{done.stdout[-1500:]}{done.stderr[-1500:]}"
    else:
        reason = ("chromium is not installed and only root can install it "
                  "(apt-get install chromium, or `make test` as root through scripts/ensure-services.sh)")
    if _on_ci():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> str:
    """The API alone under uvicorn, in the embedded mode (SQLite file in a temp dir)."""
    data = tmp_path_factory.mktemp("docs-api")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VISIONGATE_", "BRIA_", "SIM_")) and k not in ("DATABASE_URL", "BROKER_URL", "REDIS_URL")}
    env["VISIONGATE_DATA_DIR"] = str(data)
    log = open(data / "api.log", "w+b")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                             "--port", str(port), "--no-access-log"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/openapi.json", 60, proc)
    except Exception:
        proc.kill()
        raise RuntimeError((data / "api.log").read_text())
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


def run_browser(browser: str, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}",
           # no name resolves but this machine's: a page that needs a CDN renders nothing
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           "--virtual-time-budget=10000", *args, url]
    return subprocess.run(cmd, capture_output=True, timeout=180)


class OperationPaths(HTMLParser):
    """The ``data-path`` of every element inside a Swagger UI operation block (``.opblock``)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []  # per open element: inside an opblock?
        self.paths: set[str] = set()
        self.blocks = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        inside = bool(self.stack and self.stack[-1])
        if "opblock" in (attrs.get("class") or "").split():
            inside = True
            self.blocks += 1
        if inside and attrs.get("data-path"):
            self.paths.add(attrs["data-path"])
        if tag not in self.VOID:
            self.stack.append(inside)

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()


def test_docs_page_references_only_this_server(api):
    page = httpx.get(api + "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for marker in EXTERNAL:
        assert marker not in html, f"/docs references {marker!r}"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3, assets  # script, stylesheet, favicon
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        resp = httpx.get(api + asset)
        assert resp.status_code == 200 and len(resp.content) > 100, asset
    assert "url: '/openapi.json'" in html
    assert httpx.get(api + "/openapi.json").json()["paths"][OPERATION]
    assert "oauth2" in httpx.get(api + "/docs/oauth2-redirect").text
    assert httpx.get(api + "/redoc").status_code == 404  # not offered: ReDoc's bundle loads from its CDN


def test_docs_page_renders_in_headless_chromium(api, browser, tmp_path):
    done = run_browser(browser, tmp_path / "profile", api + "/docs", "--dump-dom")
    dom = done.stdout.decode(errors="replace")
    assert done.returncode == 0 and "swagger-ui" in dom, done.stderr.decode(errors="replace")[-3000:]
    assert "Failed to load API definition" not in dom
    parser = OperationPaths()
    parser.feed(dom)
    assert OPERATION in parser.paths, f"no rendered operation block for {OPERATION}: {sorted(parser.paths)[:10]}"
    documented = set(httpx.get(api + "/openapi.json").json()["paths"])
    assert documented - parser.paths == set()  # every path of the API is rendered, not just the shell
    assert parser.blocks >= 30
    assert "visiongate" in dom and "Authorize" in dom  # the title and the X-API-Key scheme

    # And it looks rendered: a screenshot with Swagger UI's green POST operations in it.
    shot = tmp_path / "docs.png"
    done = run_browser(browser, tmp_path / "profile2", api + "/docs", f"--screenshot={shot}", "--window-size=1280,2000")
    assert done.returncode == 0 and shot.exists(), done.stderr.decode(errors="replace")[-3000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    green = sum(count for count, colour in image.getcolors(1 << 20) if colour == SWAGGER_POST_GREEN)
    assert green > 5000, f"{green} pixels of the POST colour: the page did not render ({shot})"
