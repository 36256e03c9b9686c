"""Mutation test of gmlib: plant one small mistake at a time, run that module's tests, count the mistakes caught.

    .venv/bin/python tools/mutate.py                                   # or: make mutate
    .venv/bin/python tools/mutate.py --modules gmlib/divergences.py --jobs 2
    .venv/bin/python tools/mutate.py --modules gmlib/data.py --tests tests/test_data.py --list

Each *mutant* is the source with one change, of the kinds a slip of the pen makes in a formula:
an arithmetic operator swapped (``+``/``-``, ``*``/``/``, ``//``/``/``, ``**``/``*``, ``&``/``|``, also in
``+=``), a comparison swapped (``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``is``/``is not``, ``in``/``not in``),
``and``/``or`` swapped, a unary ``-``/``not``/``~`` dropped, ``True``/``False`` swapped, or a number
``c`` replaced by ``c + 1`` (0.5 -> 1.5, 2 -> 3). Docstrings, f-strings and annotations are left alone, and so
are the default values in function signatures (configuration, not formulas; ``--defaults`` mutates them too).

A mutant is *killed* when its tests fail (or run past ``--timeout``); it *survives* when they pass. A
survivor is a change the tests cannot see: either a missing test, or an equivalent mutant (no observable
change), which the report's reader has to decide. The tests of ``gmlib/<pkg>/<m>.py`` are
``tests/test_<m>.py`` (see ``EXTRA_TESTS``), plus ``tests/test_models.py`` for the models, run with
``pytest -x -q -p no:cacheprovider``; ``--tests`` overrides them.

The live tree is never written: each worker (``--jobs``) copies the package and ``tests/`` into a temporary
folder, plants its mutants there one at a time (restoring the file in a ``finally``, and removing the whole
copy on exit, Ctrl-C included) and runs pytest there with ``PYTHONPATH`` pointing at the copy and no bytecode
cache. The summary ends with the kill rate and every survivor as ``file:line: original -> mutant``;
``--json`` also writes every result. Exit status: 0, or 1 when ``--fail-under`` is given and not met.
"""

import argparse
import ast
import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "gmlib"
#: Modules whose tests do not live in tests/test_<module>.py, or that several test files exercise.
EXTRA_TESTS: dict[str, list[str]] = {
    "discrete_vae": ["tests/test_vae.py"],
    "protocol": ["tests/test_models.py", "tests/test_train.py", "tests/test_gan.py", "tests/test_autoencoders.py"],
    "validation": ["tests/test_validation.py", "tests/test_divergences.py", "tests/test_data.py"],
}
#: Left out by default: pure presentation (matplotlib styling, figure layout), no number the book asserts.
SKIPPED_BY_DEFAULT = ("gmlib/plots.py",)
SNIPPET_CHARS = 70

BINARY_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
}
COMPARE_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
BOOL_SWAPS: dict[type, type] = {ast.And: ast.Or, ast.Or: ast.And}
DROPPED_UNARY = (ast.USub, ast.Not, ast.Invert)


@dataclass(frozen=True)
class Mutant:
    """One planted change: the ``index``-th node of ``ast.walk`` over ``path``, changed as ``kind`` says."""

    path: str  # relative to the root, e.g. "gmlib/divergences.py"
    index: int  # position of the node in ast.walk(ast.parse(source))
    operand: int  # which comparison operator, for a chained comparison; 0 otherwise
    kind: str  # "binop", "augassign", "compare", "boolop", "unary", "bool", "number"
    line: int
    col: int
    original: str
    mutated: str
    lines: tuple[int, ...]  # the lines whose execution reaches it: its own, and its statement's first

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}:{self.col + 1}"


@dataclass(frozen=True)
class Result:
    mutant: Mutant
    status: str  # "killed", "timeout", "survived" or "uncovered" (no test executes its line)
    seconds: float
    tests: int  # how many tests ran (those that execute the mutated line)


# --- finding and planting mutants -----------------------------------------------------------------------------


def _skipped_nodes(tree: ast.Module, *, defaults: bool) -> set[int]:
    """ids of the nodes no mutant touches: docstrings, f-strings, annotations and (unless ``defaults``) defaults."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            roots.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            roots += [a.annotation for a in (*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs)]
            roots += [node.args.vararg and node.args.vararg.annotation, node.args.kwarg and node.args.kwarg.annotation]
            roots.append(node.returns)
            roots += node.decorator_list
            if not defaults:
                roots += [*node.args.defaults, *node.args.kw_defaults]
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
            if not defaults and isinstance(node.value, ast.Constant):
                roots.append(node.value)  # a dataclass field's default
    return {id(n) for root in roots if root is not None for n in ast.walk(root)}


def _snippet(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3] + "..."


def _mutations(node: ast.AST) -> Iterator[tuple[str, int, ast.AST]]:
    """(kind, operand, mutated copy of ``node``) for every mutant of this one node."""
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY_SWAPS:
        new = copy.deepcopy(node)
        new.op = BINARY_SWAPS[type(node.op)]()
        yield "binop", 0, new
    elif isinstance(node, ast.AugAssign) and type(node.op) in BINARY_SWAPS:
        new = copy.deepcopy(node)
        new.op = BINARY_SWAPS[type(node.op)]()
        yield "augassign", 0, new
    elif isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            if type(op) in COMPARE_SWAPS:
                new = copy.deepcopy(node)
                new.ops[k] = COMPARE_SWAPS[type(op)]()
                yield "compare", k, new
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = BOOL_SWAPS[type(node.op)]()
        yield "boolop", 0, new
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, DROPPED_UNARY):
        yield "unary", 0, copy.deepcopy(node.operand)
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield "bool", 0, ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        yield "number", 0, ast.Constant(node.value + 1)


def find_mutants(root: Path, path: str, *, defaults: bool = False) -> list[Mutant]:
    """Every mutant of the module at ``root / path``, in source order."""
    tree = ast.parse((root / path).read_text(encoding="utf-8"))
    skipped = _skipped_nodes(tree, defaults=defaults)
    docstrings = {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and (body := node.body)
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
    }
    statement_line: dict[int, int] = {}  # node id -> first line of its innermost statement
    for node in ast.walk(tree):  # breadth first: an inner statement overwrites the outer one
        if isinstance(node, ast.stmt):
            for inner in ast.walk(node):
                statement_line[id(inner)] = node.lineno
    found = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skipped or id(node) in docstrings:
            continue
        mutations = list(_mutations(node))
        if not mutations:
            continue
        lines = tuple(sorted({*range(node.lineno, node.end_lineno + 1), statement_line.get(id(node), node.lineno)}))
        for kind, operand, new in mutations:
            snippets = _snippet(node), _snippet(new)
            found.append(Mutant(path, index, operand, kind, node.lineno, node.col_offset, *snippets, lines))
    return sorted(found, key=lambda m: (m.line, m.col, m.index, m.operand))


def mutated_source(source: str, mutant: Mutant) -> str:
    """``source`` with ``mutant`` planted (re-parsed and unparsed: comments go, the meaning stays)."""
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    target = nodes[mutant.index]
    replacement = {(k, o): new for k, o, new in _mutations(target)}[(mutant.kind, mutant.operand)]
    for parent in nodes:
        for field, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, field, replacement)
                return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
            if isinstance(value, list) and any(v is target for v in value):
                value[[v is target for v in value].index(True)] = replacement
                return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    raise AssertionError(f"{mutant.where}: node not found")  # the tree was parsed from the same source


# --- running the tests ----------------------------------------------------------------------------------------


def default_tests(root: Path, path: str) -> list[str]:
    """Test files of the module at ``path``: test_<stem>.py, its package's, EXTRA_TESTS, test_models.py for a model."""
    parts, stem = Path(path).parts, Path(path).stem
    names = [f"tests/test_{stem}.py", *EXTRA_TESTS.get(stem, [])]
    # a module of a subpackage (gmlib/models/flows/coupling.py) is tested by the package's file (test_flows.py)
    names += [f"tests/test_{package}.py" for package in parts[1:-1] if package != "models"]
    if "models" in parts[:-1]:
        names.append("tests/test_models.py")
    return [n for i, n in enumerate(names) if (root / n).exists() and n not in names[:i]]


#: Run inside each worker's copy: a server that imports the heavy libraries once, then forks one child per
#: pytest run, so a mutant costs its tests and not the import of torch. gmlib itself is never imported here:
#: every child imports the (mutated) copy afresh.
SERVER = r"""
import importlib, json, os, signal, sys, time
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        pass
import pytest
for line in sys.stdin:
    request = json.loads(line)
    began = time.perf_counter()
    child = os.fork()
    if child == 0:
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.environ.update(request["env"])
        code = 1
        try:
            code = int(pytest.main(request["args"]))
        finally:
            os._exit(code)
    status = None
    while status is None:
        pid, code = os.waitpid(child, os.WNOHANG)
        if pid:
            status = "passed" if os.waitstatus_to_exitcode(code) == 0 else "failed"
        elif time.perf_counter() - began > request["timeout"]:
            os.killpg(child, signal.SIGKILL)
            os.waitpid(child, 0)
            status = "timeout"
        else:
            time.sleep(0.02)
    print(json.dumps({"status": status, "seconds": time.perf_counter() - began}), flush=True)
"""

#: A pytest plugin for the baseline run: which lines of the package each test executes (the mutants on a
#: line are then tried against the tests that run it, and a line no test runs needs no run at all).
TRACER = r"""
import json, os, sys, threading
import pytest
_root = os.environ["MUTATE_TRACE_ROOT"]
_lines = {"<import>": set()}
_current = _lines["<import>"]
def _local(frame, event, arg):
    if event == "line":
        _current.add((frame.f_code.co_filename, frame.f_lineno))
    return _local
def _global(frame, event, arg):
    if frame.f_code.co_filename.startswith(_root):
        _current.add((frame.f_code.co_filename, frame.f_lineno))
        return _local
    return None
sys.settrace(_global)
threading.settrace(_global)
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _current
    _current = _lines.setdefault(item.nodeid, set())
    yield
    _current = _lines["<import>"]
def pytest_sessionfinish(session):
    sys.settrace(None)
    threading.settrace(None)
    root = os.path.dirname(_root)
    out = {k: sorted({f"{os.path.relpath(f, root)}:{n}" for f, n in v}) for k, v in _lines.items()}
    with open(os.environ["MUTATE_TRACE_OUT"], "w") as file:
        json.dump(out, file)
"""
PRELOAD = (
    "torch",
    "numpy",
    "scipy.stats",
    "scipy.integrate",
    "scipy.optimize",
    "sklearn.datasets",
    "sympy",
    "hypothesis",
    "matplotlib.pyplot",
    "tqdm",
)


class Worker:
    """A private copy of the package and its tests, in which one mutant at a time is planted."""

    def __init__(self, root: Path, package: str, base: Path, number: int, preload: Sequence[str] = PRELOAD) -> None:
        self.dir, self.package = base / f"worker{number}", package
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
        shutil.copytree(root / package, self.dir / package, ignore=ignore)
        if (root / "tests").exists():
            shutil.copytree(root / "tests", self.dir / "tests", ignore=ignore)
        for name in ("pyproject.toml", "pytest.ini", "setup.cfg", "conftest.py"):
            if (root / name).exists():
                shutil.copy2(root / name, self.dir / name)
        (self.dir / "_mutate_server.py").write_text(SERVER, encoding="utf-8")
        (self.dir / "_mutate_trace.py").write_text(TRACER, encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(self.dir), PYTHONDONTWRITEBYTECODE="1")
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MKL_NUM_THREADS", "1")
        self.server = subprocess.Popen(
            [sys.executable, "_mutate_server.py", *preload],
            cwd=self.dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def run_tests(self, tests: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> tuple[str, float]:
        """Run pytest on ``tests`` (files or node ids) in this copy: ("passed" | "failed" | "timeout", seconds)."""
        args = ["-x", "-q", "-p", "no:cacheprovider", *tests]
        if env and "MUTATE_TRACE_OUT" in env:
            args = ["-q", "-p", "no:cacheprovider", "-p", "_mutate_trace", *tests]
        request = {"args": args, "timeout": timeout, "env": env or {}}
        try:
            self.server.stdin.write(json.dumps(request) + "\n")
            self.server.stdin.flush()
            answer = json.loads(self.server.stdout.readline())
        finally:
            shutil.rmtree(self.dir / ".hypothesis", ignore_errors=True)  # no example carries over to the next mutant
        return answer["status"], answer["seconds"]

    def trace(self, tests: Sequence[str], timeout: float) -> tuple[str, float, dict[str, set[str]]]:
        """Run ``tests`` once unmutated, recording the lines of the package each test executes."""
        out = self.dir / "_mutate_trace.json"
        env = {"MUTATE_TRACE_ROOT": str(self.dir / self.package), "MUTATE_TRACE_OUT": str(out)}
        status, seconds = self.run_tests(tests, timeout, env)
        lines: dict[str, set[str]] = {}
        if out.exists():
            lines = {k: set(v) for k, v in json.loads(out.read_text(encoding="utf-8")).items()}
        return status, seconds, lines

    def stop(self) -> None:
        """End this worker's server and whatever pytest it runs."""
        if self.server.poll() is None:
            try:
                os.killpg(self.server.pid, signal.SIGKILL)  # the server and its forked children share a session
            except ProcessLookupError:
                pass
            self.server.wait()

    def try_mutant(self, mutant: Mutant, tests: Sequence[str], timeout: float) -> Result:
        target = self.dir / mutant.path
        original = target.read_text(encoding="utf-8")
        try:
            target.write_text(mutated_source(original, mutant), encoding="utf-8")
            status, seconds = self.run_tests(tests, timeout)
        finally:
            target.write_text(original, encoding="utf-8")
        return Result(mutant, {"passed": "survived", "failed": "killed"}.get(status, status), seconds, len(tests))


def _tests_running(mutant: Mutant, files: Sequence[str], coverage: dict[str, set[str]]) -> list[str]:
    """The tests in ``files`` that execute a line of ``mutant``: all of them for a line run at import time."""
    lines = {f"{mutant.path}:{n}" for n in mutant.lines}
    if lines & coverage.get("<import>", set()):
        return list(files)
    return [t for t, ran in coverage.items() if t.split("::")[0] in files and lines & ran]


def run(
    root: Path,
    mutants: Sequence[Mutant],
    tests_of: dict[str, list[str]],
    *,
    package: str,
    jobs: int,
    timeout: float | None,
    preload: Sequence[str] = PRELOAD,
    report=print,
) -> list[Result]:
    """Try every mutant in ``jobs`` private copies of the tree; return the results in the order of ``mutants``.

    First the tests of every module run once, unmutated and traced: they must pass, their time sets the
    timeout, and their line coverage picks each mutant's tests (a mutant no test executes is "uncovered").
    """
    base = Path(tempfile.mkdtemp(prefix="gmlib-mutate-"))
    results: dict[int, Result] = {}
    workers: list[Worker] = []
    lock = threading.Lock()
    stopping = threading.Event()
    try:
        workers = [Worker(root, package, base, k, preload) for k in range(max(1, jobs))]
        files = sorted({t for tests in tests_of.values() for t in tests})
        status, seconds, coverage = workers[0].trace(files, timeout=3600)
        if status != "passed":
            raise SystemExit(f"the unmutated tests {' '.join(files)} do not pass ({status}); fix them first")
        limit = timeout or max(30.0, 3 * seconds + 10)
        report(f"baseline: {len(coverage) - 1} tests in {seconds:.1f} s (traced); timeout per mutant {limit:.0f} s")
        plans = [_tests_running(m, tests_of[m.path], coverage) for m in mutants]
        for k, plan in enumerate(plans):
            if not plan:
                results[k] = Result(mutants[k], "uncovered", 0.0, 0)
        free = list(workers)

        def attempt(k: int) -> None:
            with lock:
                worker = free.pop()
            try:
                result = worker.try_mutant(mutants[k], plans[k], limit)
            finally:
                with lock:
                    free.append(worker)
            with lock:
                if stopping.is_set():  # its pytest was killed by the interrupt: no verdict
                    return
                results[k] = result
                m = result.mutant
                report(f"[{len(results)}/{len(mutants)}] {result.status:8} {m.where}: {m.original} -> {m.mutated}")

        pool = ThreadPoolExecutor(max_workers=len(workers))
        futures = [pool.submit(attempt, k) for k in range(len(mutants)) if k not in results]
        try:
            while wait(futures, timeout=0.5).not_done:  # short waits, so that Ctrl-C gets through
                pass
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            stopping.set()
            for future in futures:
                future.cancel()
            for worker in workers:
                worker.stop()
            report("interrupted: the results so far follow")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        for worker in workers:
            worker.stop()
        shutil.rmtree(base, ignore_errors=True)
    return [results[k] for k in sorted(results)]


def summary(results: Sequence[Result]) -> str:
    """The kill rate and every survivor, as text."""
    total = len(results)
    killed = sum(r.status in ("killed", "timeout") for r in results)
    timeouts = sum(r.status == "timeout" for r in results)
    uncovered = sum(r.status == "uncovered" for r in results)
    rate = 100 * killed / total if total else 100.0
    lines = [
        f"killed {killed} of {total} mutants ({rate:.1f}%), {timeouts} of them by timeout; "
        f"{uncovered} survivors on lines no test executes"
    ]
    by_module: dict[str, list[Result]] = {}
    for r in results:
        by_module.setdefault(r.mutant.path, []).append(r)
    for path, rs in by_module.items():
        k = sum(r.status in ("killed", "timeout") for r in rs)
        lines.append(f"  {path}: {k}/{len(rs)}")
    survivors = [r for r in results if r.status in ("survived", "uncovered")]
    lines.append(f"survivors ({len(survivors)}):" if survivors else "no survivors")
    for r in survivors:
        m = r.mutant
        why = "  (no test executes this line)" if r.status == "uncovered" else f"  ({r.tests} tests ran)"
        lines.append(f"  {m.where}: {m.original} -> {m.mutated}{why}")
    return "\n".join(lines)


def kill_rate(results: Sequence[Result]) -> float:
    return 100 * sum(r.status in ("killed", "timeout") for r in results) / len(results) if results else 100.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="project root holding the package and tests/")
    parser.add_argument("--package", default=PACKAGE, help="the package folder to mutate (default: gmlib)")
    parser.add_argument("--modules", nargs="+", help="files to mutate, relative to the root (default: every module)")
    parser.add_argument("--tests", nargs="+", help="test files to run for every mutant (default: the module's own)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tried at once, each in its own copy (default 1)")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 3x the unmutated run + 10)")
    parser.add_argument("--max-mutants", type=int, help="try a random sample of this many mutants")
    parser.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    parser.add_argument("--defaults", action="store_true", help="also mutate default values in signatures")
    parser.add_argument(
        "--preload", nargs="*", default=list(PRELOAD), help="modules each worker imports once (default: gmlib's)"
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    parser.add_argument("--json", type=Path, help="write every result to this file")
    parser.add_argument("--fail-under", type=float, help="exit 1 when the kill rate (in %%) is below this")
    args = parser.parse_args(argv)
    root = args.root.resolve()

    if args.modules:
        modules = [str(Path(m)) for m in args.modules]
    else:
        modules = sorted(
            str(p.relative_to(root)) for p in (root / args.package).rglob("*.py") if "__pycache__" not in p.parts
        )
        modules = [m for m in modules if m not in SKIPPED_BY_DEFAULT and Path(m).name != "__init__.py"]
    tests_of = {m: list(args.tests) if args.tests else default_tests(root, m) for m in modules}
    untested = [m for m, t in tests_of.items() if not t]
    if untested:
        print(f"no test file for {', '.join(untested)}; give --tests", file=sys.stderr)
        return 2
    mutants = [mutant for m in modules for mutant in find_mutants(root, m, defaults=args.defaults)]
    if args.max_mutants is not None and args.max_mutants < len(mutants):
        chosen = sorted(random.Random(args.seed).sample(range(len(mutants)), args.max_mutants))
        mutants = [mutants[k] for k in chosen]
    if args.list:
        for m in mutants:
            print(f"{m.where}: {m.original} -> {m.mutated}    [{' '.join(tests_of[m.path])}]")
        print(f"{len(mutants)} mutants")
        return 0

    began = time.perf_counter()
    results = run(
        root, mutants, tests_of, package=args.package, jobs=args.jobs, timeout=args.timeout, preload=args.preload
    )
    print(summary(results))
    print(f"({time.perf_counter() - began:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1), encoding="utf-8")
    if args.fail_under is not None and kill_rate(results) < args.fail_under:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
