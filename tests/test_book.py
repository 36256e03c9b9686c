r"""The book builds with warnings as errors, fails on a raising cell, and renders offline in Chromium.

The build executes every chapter; the browser test then opens each built page
in headless Chromium on a loopback server and checks that MathJax typeset the
math, that every image loaded, that nothing was fetched from another host and
that the console is clean. It then checks what a reader sees (``READER_AUDIT``):
no literal ``$`` or ``\(`` in the text, no display equation wider than the
column, no code line wider than its block (folded cells opened), every figure
captioned, no error output. A full-page screenshot of every page lands in
_build/test-artifacts/.
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

# What a reader would see as a defect, found in the rendered page (after MathJax has run).
READER_AUDIT = r"""
const article = document.querySelector('article') || document.body;
document.querySelectorAll('details').forEach(d => { d.open = true; });  // unfold hidden code
const skip = 'pre, code, script, style, mjx-container, .highlight, .MathJax, textarea';
const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
const literalMath = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (node.parentElement.closest(skip)) continue;
  const text = node.textContent;
  if (/\$|\\\(|\\\[/.test(text)) literalMath.push(text.trim().slice(0, 80));
}
const wideMath = Array.from(article.querySelectorAll('mjx-container[display="true"]'))
  .filter(c => c.firstElementChild.getBoundingClientRect().width > c.getBoundingClientRect().width + 1)
  .map(c => (c.closest('.math') || c).textContent.slice(0, 80));
const wideCode = Array.from(article.querySelectorAll('pre'))
  .filter(p => p.scrollWidth > p.clientWidth + 1)
  .map(p => p.textContent.split('\n').reduce((a, b) => (b.length > a.length ? b : a), '').slice(0, 80));
const uncaptioned = Array.from(article.querySelectorAll('img'))
  .filter(i => { const f = i.closest('figure'); return !f || !f.querySelector('figcaption')
                 || !f.querySelector('figcaption').textContent.trim(); })
  .map(i => i.getAttribute('src'));
const errors = Array.from(article.querySelectorAll('.output.traceback, .output.error, .cell_output .stderr'))
  .map(e => e.textContent.replace(/-{3,}/g, '').trim().slice(0, 80))
  .concat(Array.from(article.querySelectorAll('.cell_output pre'))
          .filter(p => p.textContent.includes('Traceback (most recent call last)'))
          .map(p => p.textContent.slice(0, 80)));
return {literalMath, wideMath, wideCode, uncaptioned, errors};
"""


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
    shutil.copytree(ROOT / "book" / "_ext", source / "book" / "_ext")
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
    yield driver, f"http://127.0.0.1:{server.server_address[1]}", html
    driver.quit()
    server.shutdown()
    shutil.rmtree(profile, ignore_errors=True)


def _wait_for_math(driver, page: str) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    untypeset = (
        "return Array.from(document.querySelectorAll('div.math, span.math'))"
        ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 200))"
    )
    try:
        WebDriverWait(driver, 30).until(lambda d: not d.execute_script(untypeset))
    except TimeoutException:
        pytest.fail(f"{page}: MathJax left math untypeset: {driver.execute_script(untypeset)}")


def _full_page_screenshot(driver, path: Path) -> None:
    """The whole page as one PNG (Chromium's DevTools capture beyond the viewport)."""
    import base64

    size = driver.execute_script("return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}},
    )
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.mark.parametrize("page", _pages())
def test_page_renders_offline(browser, page):
    driver, origin, _ = browser
    driver.get(f"{origin}/{page}.html")
    _wait_for_math(driver, page)
    if driver.execute_script("return document.querySelectorAll('.math').length") > 0:
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
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{Path(page).name}.png"
    _full_page_screenshot(driver, shot)  # as the reader first sees it: folded cells folded
    assert shot.stat().st_size > 10_000
    defects = {kind: found for kind, found in driver.execute_script(READER_AUDIT).items() if found}
    assert not defects, f"{page}: a reader would see {defects}"


def test_chapters_typeset_math_and_show_figures(browser):
    driver, origin, _ = browser
    driver.get(f"{origin}/book/mle.html")
    assert driver.execute_script("return document.querySelectorAll('mjx-container').length") > 20
    assert driver.execute_script("return document.querySelectorAll('img[src*=\"_images\"]').length") >= 1


PLANTED_PAGE = r"""# Planted defects

A dollar sign left over: $x$ costs $5.

$$
a_1+a_2+a_3+a_4+a_5+a_6+a_7+a_8+a_9+a_{10}+a_{11}+a_{12}+a_{13}+a_{14}+a_{15}+a_{16}+a_{17}+a_{18}+a_{19}+a_{20}+a_{21}+a_{22}+a_{23}+a_{24}+a_{25}+a_{26}+a_{27}+a_{28}
$$

```{code-cell} ipython3
:tags: [hide-input]

{long_line}
```

```{code-cell} ipython3
import matplotlib.pyplot as plt

plt.plot([0, 1], [1, 0])
plt.show()
```

```{code-cell} ipython3
:tags: [raises-exception]

raise ValueError("planted error output")
```
"""


def test_reader_audit_finds_each_planted_defect(tmp_path, browser):
    """Every check of READER_AUDIT fails on a page that has the defect it looks for."""
    source = tmp_path / "book-src"
    (source / "book").mkdir(parents=True)
    config = (ROOT / "_config.yml").read_text()  # the planted error output must not stop the build
    config = config.replace("allow_errors: false", "allow_errors: true")
    config = config.replace("nb_execution_raise_on_error: true", "nb_execution_raise_on_error: false")
    (source / "_config.yml").write_text(config)
    shutil.copy(ROOT / "book" / "references.bib", source / "book")
    shutil.copytree(ROOT / "book" / "_static", source / "book" / "_static")
    shutil.copytree(ROOT / "book" / "_ext", source / "book" / "_ext")
    (source / "_toc.yml").write_text("format: jb-book\nroot: book/planted\n")
    header = (ROOT / "book" / "mle.md").read_text().split("---\n")[1]
    long_line = "very_long_name = [" + ", ".join(["12345678"] * 16) + "]"  # 177 characters
    page = PLANTED_PAGE.replace("{long_line}", long_line)
    (source / "book" / "planted.md").write_text(f"---\n{header}---\n\n{page}")
    result = _build(source, tmp_path / "out")
    html = tmp_path / "out" / "_build" / "html"
    assert (html / "book" / "planted.html").exists(), (result.stdout + result.stderr)[-3000:]
    driver, origin, served = browser  # the loopback server serves the built book's folder: add the planted one
    shutil.copytree(html, served / "planted-book")
    try:
        driver.get(f"{origin}/planted-book/book/planted.html")
        _wait_for_math(driver, "planted")
        defects = driver.execute_script(READER_AUDIT)
    finally:
        shutil.rmtree(served / "planted-book", ignore_errors=True)
    assert any("$5" in text or "$" in text for text in defects["literalMath"]), defects
    assert defects["wideMath"], defects
    assert any("very_long_name" in line for line in defects["wideCode"]), defects
    assert defects["uncaptioned"], defects
    assert any("planted error output" in text or "ValueError" in text for text in defects["errors"]), defects
