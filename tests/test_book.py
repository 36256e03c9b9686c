"""The book builds with warnings as errors, fails on a raising cell, and renders offline in Chromium.

The build executes every chapter; the browser test then opens each built page
in headless Chromium on a loopback server and checks that MathJax typeset the
math, that every image loaded, that nothing was fetched from another host and
that the console is clean. A screenshot lands in _build/test-artifacts/.
"""

import functools
import http.server
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")
ARTIFACTS = ROOT / "_build" / "test-artifacts"


def _build(source: Path, output: Path) -> subprocess.CompletedProcess:
    command = [str(JUPYTER_BOOK), "build", str(source), "--path-output", str(output), "-W", "-n", "--keep-going"]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def built_book():
    output = Path(tempfile.mkdtemp(prefix="gmlib-book-"))
    result = _build(ROOT, output)
    yield result, output / "_build" / "html"
    shutil.rmtree(output, ignore_errors=True)


def _pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for entry in toc["chapters"]]


def test_book_builds_without_warnings(built_book):
    result, html = built_book
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    sphinx_warnings = re.findall(r"^.*(?:^|: )WARNING: .*$", re.sub(r"\x1b\[[0-9;]*m", "", log), flags=re.M)
    assert not sphinx_warnings, sphinx_warnings
    for page in _pages():
        assert (html / f"{page}.html").exists(), page
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax is not vendored"


def test_a_raising_cell_fails_the_build(tmp_path):
    source = tmp_path / "book-src"
    (source / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", source)
    shutil.copy(ROOT / "book" / "references.bib", source / "book")
    shutil.copytree(ROOT / "book" / "_static", source / "book" / "_static")
    (source / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/broken\n")
    (source / "book" / "intro.md").write_text("# Intro\n")
    header = (ROOT / "book" / "mle.md").read_text().split("---\n")[1]
    cell = "```{code-cell} ipython3\nraise ZeroDivisionError('planted failure')\n```\n"
    (source / "book" / "broken.md").write_text(f"---\n{header}---\n\n# Broken\n\n{cell}")
    result = _build(source, tmp_path / "out")
    assert result.returncode != 0
    assert "planted failure" in result.stdout + result.stderr


def test_a_wrong_identity_fails_nbval(tmp_path):
    notebook = (ROOT / "notebooks" / "mle.ipynb").read_text()
    right = "sp.log(2 * sp.pi * sp.E * sigma**2) / 2"
    assert right in notebook, "the planted identity moved: update this test"
    (tmp_path / "planted.ipynb").write_text(notebook.replace(right, "sp.log(2 * sp.pi * sigma**2) / 2"))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "planted.ipynb",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "Gaussian entropy does not hold" in result.stdout


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def browser(built_book):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    result, html = built_book
    assert result.returncode == 0, "the book did not build"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="gmlib-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    yield driver, f"http://127.0.0.1:{server.server_address[1]}"
    driver.quit()
    server.shutdown()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.parametrize("page", _pages())
def test_page_renders_offline(browser, page):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver, origin = browser
    driver.get(f"{origin}/{page}.html")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    has_math = driver.execute_script("return document.querySelectorAll('.math').length") > 0
    if has_math:
        untypeset = (
            "return Array.from(document.querySelectorAll('div.math, span.math'))"
            ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 200))"
        )
        try:
            WebDriverWait(driver, 30).until(lambda d: not d.execute_script(untypeset))
        except TimeoutException:
            pytest.fail(f"{page}: MathJax left math untypeset: {driver.execute_script(untypeset)}")
        errors = driver.execute_script(
            "return Array.from(document.querySelectorAll('mjx-merror')).map(e => e.textContent)"
        )
        assert not errors, f"{page}: MathJax could not typeset: {errors}"
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"
    )
    broken = [src for src, loaded in images if not loaded]
    assert not broken, f"{page}: images that did not load: {broken}"
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    foreign = [name for name in resources if not name.startswith(origin) and not name.startswith("data:")]
    assert not foreign, f"{page}: fetched from other hosts: {foreign}"
    console = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not console, f"{page}: console errors: {console}"
    if page.endswith("mle"):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "mle.png"))
        assert (ARTIFACTS / "mle.png").stat().st_size > 10_000


def test_chapters_typeset_math_and_show_figures(browser):
    driver, origin = browser
    driver.get(f"{origin}/book/mle.html")
    assert driver.execute_script("return document.querySelectorAll('mjx-container').length") > 20
    assert driver.execute_script("return document.querySelectorAll('img[src*=\"_images\"]').length") >= 1
