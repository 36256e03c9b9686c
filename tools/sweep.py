"""Execute chapters under many seeds and tabulate what passed and what they recorded.

    .venv/bin/python tools/sweep.py --seeds 10 --chapters gan vae      # or: make sweep SEEDS=10 CHAPTERS="gan vae"

Each job executes one committed ``notebooks/<chapter>.ipynb`` (nothing is regenerated) in a fresh Jupyter
kernel, inside its own subprocess whose environment carries ``GMLIB_SEED``, ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``, ``GMLIB_RECORD`` (a scratch file the chapter appends ``{"name": ..., "value": ...}`` JSON
lines to) and, when asked for, ``ATEN_CPU_CAPABILITY``; the kernel inherits it. The summary (pass or failing
cell per chapter and seed, wall times, min/median/max of every recorded number) is printed as GitHub Markdown
and written to ``_build/sweep/sweep-<timestamp>.md``, with every job's numbers seed by seed in the
``.json`` beside it. The exit status is 1 when a job failed, 2 on bad options.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MESSAGE_CHARS = 160  # a failure's message is cut to this length in the report
SOURCE_CHARS = 80  # and the failing cell's first source line to this one


@dataclass(frozen=True)
class Outcome:
    """How one execution of a notebook ended: passed, or failed in code cell ``cell`` (counted from 1)."""

    passed: bool
    cell: int | None = None  # None when it failed outside a cell (the kernel did not start, the job crashed)
    first_line: str = ""  # the failing cell's first source line
    message: str = ""  # the exception's last line, e.g. "AssertionError: planted"


@dataclass(frozen=True)
class JobResult:
    """One (chapter, seed) job: its outcome, its wall time in seconds and the numbers the chapter recorded."""

    chapter: str
    seed: int
    outcome: Outcome
    wall_s: float
    records: dict[str, float]


@dataclass(frozen=True)
class Settings:
    """What every job of a sweep shares."""

    notebooks: Path  # the folder holding <chapter>.ipynb
    threads: int  # OMP_NUM_THREADS and MKL_NUM_THREADS of each kernel
    capability: str | None  # ATEN_CPU_CAPABILITY of each kernel; None inherits this process's
    timeout: int  # seconds per cell


# ---------------------------------------------------------------------------------------------- options


def toc_chapters(root: Path = ROOT) -> list[str]:
    """The chapter names listed in ``_toc.yml``, in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [Path(entry["file"]).name for entry in toc.get("chapters", [])]


def choose_chapters(requested: Sequence[str] | None, notebooks: Path, root: Path = ROOT) -> list[str]:
    """The chapters to sweep: ``requested``, or every chapter of the book with a notebook in ``notebooks``."""
    available = sorted(p.stem for p in notebooks.glob("*.ipynb"))
    if not available:
        raise ValueError(f"--notebooks: no .ipynb files in {notebooks}")
    if not requested:
        chosen = [name for name in toc_chapters(root) if name in available]
        if not chosen:
            raise ValueError(f"--chapters: no chapter of _toc.yml has a notebook in {notebooks}; name some")
        return chosen
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise ValueError(f"--chapters: unknown chapter {', '.join(map(repr, unknown))}; valid: {', '.join(available)}")
    return list(dict.fromkeys(requested))


def require_int(option: str, value: int, *, low: int) -> None:
    """Raise unless ``value`` >= ``low``, naming the command-line ``option``."""
    if value < low:
        raise ValueError(f"{option} must be an int >= {low}, got {value}")


def build_parser() -> argparse.ArgumentParser:
    """The command line, every option documented."""
    parser = argparse.ArgumentParser(
        prog="tools/sweep.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run it with .venv/bin/python so that each kernel is the environment's Python.",
    )
    parser.add_argument("--seeds", type=int, metavar="N", default=10, help="how many seeds per chapter (default 10)")
    parser.add_argument(
        "--first", type=int, metavar="K", default=0, help="the first seed (default 0): seeds K..K+N-1, N of --seeds"
    )
    parser.add_argument(
        "--chapters",
        nargs="+",
        metavar="NAME",
        help="chapters to run (default: every _toc.yml chapter with a notebook)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        default=1,
        help="OMP_NUM_THREADS and MKL_NUM_THREADS of each job (default 1)",
    )
    parser.add_argument(
        "--jobs", type=int, metavar="N", default=2, help="jobs (one kernel each) running at a time (default 2)"
    )
    parser.add_argument(
        "--capability", metavar="NAME", help="exported as ATEN_CPU_CAPABILITY to every job, e.g. default, avx2"
    )
    parser.add_argument(
        "--timeout", type=int, metavar="SECONDS", default=900, help="seconds a cell may run (default 900)"
    )
    parser.add_argument(
        "--notebooks",
        type=Path,
        metavar="DIR",
        default=ROOT / "notebooks",
        help="folder of <chapter>.ipynb (default notebooks/)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        default=ROOT / "_build" / "sweep",
        help="folder for the report (default _build/sweep/)",
    )
    parser.add_argument(
        "--run-one",
        nargs=2,
        metavar=("NOTEBOOK", "RESULT"),
        type=Path,
        help="internal, one job: execute NOTEBOOK in a kernel that inherits this process's environment and write "
        "its outcome to RESULT as JSON",
    )
    return parser


# ------------------------------------------------------------------------------------------ one job


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line, whitespace collapsed, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def execute_notebook(path: Path, timeout: int) -> Outcome:
    """Execute the notebook at ``path`` in a fresh ``python3`` kernel started in its folder; never raises."""
    import nbclient  # imported here: only the job subprocesses need Jupyter
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    started: list[int] = []  # index (among all cells) of the last cell the client started
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=lambda cell, cell_index: started.append(cell_index),
    )
    try:
        client.execute()
    except Exception as error:  # a failing cell, a timeout, a dead kernel: all are a failed job
        if isinstance(error, nbclient.exceptions.CellExecutionError):
            message = f"{error.ename}: {error.evalue}"
        else:
            message = f"{type(error).__name__}: {error}"
        if not started:
            return Outcome(passed=False, message=one_line(message))
        cells = notebook.cells[: started[-1] + 1]
        source = cells[-1].source.strip()
        return Outcome(
            passed=False,
            cell=sum(cell.cell_type == "code" for cell in cells),
            first_line=one_line(source.splitlines()[0] if source else "", SOURCE_CHARS),
            message=one_line(message),
        )
    return Outcome(passed=True)


def job_environment(seed: int, record: Path, settings: Settings) -> dict[str, str]:
    """This process's environment plus the variables one job's kernel must see."""
    env = dict(os.environ)
    env.update(
        GMLIB_SEED=str(seed),
        GMLIB_RECORD=str(record),
        OMP_NUM_THREADS=str(settings.threads),
        MKL_NUM_THREADS=str(settings.threads),
    )
    if settings.capability:
        env["ATEN_CPU_CAPABILITY"] = settings.capability
    return env


def read_records(path: Path) -> dict[str, float]:
    """The numbers a chapter recorded in ``path`` (JSON lines ``{"name", "value"}``; the last value of a name wins)."""
    if not path.exists():
        return {}
    records: dict[str, float] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                entry = json.loads(line)
                records[str(entry["name"])] = float(entry["value"])
            except (ValueError, TypeError, KeyError):
                print(f"{path}:{number}: ignored a line that is not a record: {line[:80]!r}", file=sys.stderr)
    return records


def run_job(chapter: str, seed: int, settings: Settings, scratch: Path) -> JobResult:
    """Execute ``chapter`` under ``seed`` in a subprocess (one kernel) and collect its outcome and records."""
    record, result = scratch / f"{chapter}-{seed}.jsonl", scratch / f"{chapter}-{seed}.json"
    notebook = settings.notebooks / f"{chapter}.ipynb"
    command = [sys.executable, str(Path(__file__).resolve()), "--run-one", str(notebook), str(result)]
    start = time.perf_counter()
    process = subprocess.run(
        [*command, "--timeout", str(settings.timeout)],
        env=job_environment(seed, record, settings),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall_s = time.perf_counter() - start
    if result.exists():
        outcome = Outcome(**json.loads(result.read_text()))
    else:  # the job died before it could write its outcome
        last = [line for line in process.stderr.splitlines() if line.strip()]
        outcome = Outcome(passed=False, message=one_line(last[-1] if last else f"exit status {process.returncode}"))
    return JobResult(chapter, seed, outcome, wall_s, read_records(record))


def run_sweep(
    chapters: Sequence[str],
    seeds: Sequence[int],
    settings: Settings,
    jobs: int,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[JobResult]:
    """Run every (chapter, seed) job, ``jobs`` at a time; the results in chapter, then seed, order."""
    pairs = [(chapter, seed) for chapter in chapters for seed in seeds]
    results = []
    with tempfile.TemporaryDirectory(prefix="gmlib-sweep-") as scratch, ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(run_job, chapter, seed, settings, Path(scratch)) for chapter, seed in pairs]
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            results.append(result)
            progress(
                f"[{done}/{len(pairs)}] {result.chapter} seed {result.seed}: {verdict(result)} ({result.wall_s:.1f} s)"
            )
    return sorted(results, key=lambda r: (list(chapters).index(r.chapter), r.seed))


# ------------------------------------------------------------------------------------------- report


def verdict(result: JobResult) -> str:
    """``pass``, ``FAIL cell N``, or ``FAIL`` when the job failed outside a cell."""
    if result.outcome.passed:
        return "pass"
    return "FAIL" if result.outcome.cell is None else f"FAIL cell {result.outcome.cell}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table with padded columns, so that it also reads in a terminal."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    padded = [[str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)] for row in [header, *rows]]
    lines = ["| " + " | ".join(row) + " |" for row in padded]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """Minimum, median and maximum of ``values``."""
    return min(values), statistics.median(values), max(values)


def outcome_section(results: Sequence[JobResult], chapters: Sequence[str], seeds: Sequence[int]) -> str:
    """The chapter x seed table of verdicts with wall times, and the failures' messages under it."""
    by_pair = {(r.chapter, r.seed): r for r in results}
    rows = []
    for chapter in chapters:
        walls = spread([by_pair[chapter, seed].wall_s for seed in seeds])
        rows.append([chapter, *(verdict(by_pair[chapter, seed]) for seed in seeds), *(f"{w:.1f}" for w in walls)])
    header = ["chapter", *(f"seed {seed}" for seed in seeds), "wall min (s)", "wall median (s)", "wall max (s)"]
    lines = [markdown_table(header, rows)]
    failures = [r for r in results if not r.outcome.passed]
    if failures:
        lines.append("\nFailures:\n")
        for r in failures:
            where = f", cell {r.outcome.cell} `{r.outcome.first_line}`" if r.outcome.cell is not None else ""
            lines.append(f"- {r.chapter}, seed {r.seed}{where}: {r.outcome.message}")
    return "\n".join(lines)


def records_section(results: Sequence[JobResult], chapter: str) -> str:
    """The table of every number ``chapter`` recorded: name, min, median, max over the seeds, and n."""
    values: dict[str, list[float]] = {}
    for r in results:
        if r.chapter == chapter:
            for name, value in r.records.items():
                values.setdefault(name, []).append(value)
    if not values:
        return f"### {chapter}\n\nNo numbers recorded."
    rows = [[name, *(f"{v:.4g}" for v in spread(vs)), str(len(vs))] for name, vs in values.items()]
    return f"### {chapter}\n\n" + markdown_table(["name", "min", "median", "max", "n"], rows)


def git_version() -> str:
    """The checkout's commit, ``-dirty`` when it has changes; ``unknown`` outside git."""
    try:
        run = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return run.stdout.strip() or "unknown"


def report(results: Sequence[JobResult], chapters: Sequence[str], seeds: Sequence[int], settings: Settings) -> str:
    """The whole sweep as Markdown: settings, verdicts and wall times, recorded numbers per chapter."""
    capability = settings.capability or os.environ.get("ATEN_CPU_CAPABILITY", "(unset)")
    parts = [
        f"## Seed sweep, {time.strftime('%Y-%m-%d %H:%M')}, commit {git_version()}",
        f"Seeds {seeds[0]}..{seeds[-1]}; {settings.threads} thread(s) per job; "
        f"ATEN_CPU_CAPABILITY={capability}; GMLIB_TRAIN_SCALE={os.environ.get('GMLIB_TRAIN_SCALE', '(unset)')}.",
        outcome_section(results, chapters, seeds),
        "## Recorded numbers (over the seeds that recorded them)",
        *(records_section(results, chapter) for chapter in chapters),
    ]
    return "\n\n".join(parts) + "\n"


def per_seed_json(results: Sequence[JobResult], settings: Settings) -> str:
    """Every job as JSON (chapter, seed, outcome, wall time, records): the per-seed numbers behind the report.

    A claim such as "two or more modes in 8 of 10 seeds" needs them; the Markdown report keeps only
    min, median and max.
    """
    capability = settings.capability or os.environ.get("ATEN_CPU_CAPABILITY")
    header = {"commit": git_version(), "threads": settings.threads, "capability": capability}
    return json.dumps({**header, "jobs": [asdict(result) for result in results]}, indent=1) + "\n"


# --------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep the command line asks for; 0 when every job passed, 1 otherwise (2 on bad options)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.run_one:
        notebook, result = args.run_one
        result.write_text(json.dumps(asdict(execute_notebook(notebook, args.timeout))))
        return 0
    try:
        for option, low in [("seeds", 1), ("first", 0), ("threads", 1), ("jobs", 1), ("timeout", 1)]:
            require_int(f"--{option}", getattr(args, option), low=low)
        chapters = choose_chapters(args.chapters, args.notebooks)
    except ValueError as error:
        parser.error(str(error))  # exits with status 2
    seeds = list(range(args.first, args.first + args.seeds))
    settings = Settings(args.notebooks.resolve(), args.threads, args.capability, args.timeout)
    results = run_sweep(chapters, seeds, settings, args.jobs)
    text = report(results, chapters, seeds, settings)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(text)
    path.with_suffix(".json").write_text(per_seed_json(results, settings))
    print(f"Written to {path} and, seed by seed, {path.with_suffix('.json')}", file=sys.stderr)
    return 0 if all(r.outcome.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
