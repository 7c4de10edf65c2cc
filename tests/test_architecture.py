"""The code's structure, held to what dvc.yaml promises: every lsdm module a stage imports (statically,
function-level imports included, and as traced in a real run) and every file it reads is in the
stage's `deps`; no import cycles; the registries import their entries lazily."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.checkout import ROOT

from lsdm.config import METHOD_NAMES

# Plumbing that cannot change what a stage computes: parsing and validating params, where files live,
# error types, atomic I/O, the CLI entry and dvclive's wrapper. Not required in deps, not followed.
PLUMBING = {
    "lsdm/__init__.py",
    "lsdm/__main__.py",
    "lsdm/config.py",
    "lsdm/errors.py",
    "lsdm/paths.py",
    "lsdm/interrupt.py",
    "lsdm/io.py",
    "lsdm/tracking.py",
    "lsdm/pipeline/__init__.py",
    "lsdm/pipeline/cli.py",
}


# What the rest of lsdm may take from PLUMBING: types, parsing, paths, errors, file I/O, device and thread
# choice, the tracker. Anything else imported from a plumbing module could decide what a stage computes
# while DVC never sees it change (the matcher's term rule once lived in config.py); such a thing belongs
# in a module the stage depends on, and `test_plumbing_decides_nothing` fails until it is moved there.
PLUMBING_API = {
    "lsdm": {"interrupt", "paths"},
    "lsdm.config": {
        "EvaluateParams",
        "METHOD_NAMES",
        "PARAMS_FILE",
        "Params",
        "THREADS_ENV",
        "available_cores",
        "load_params",
        "parse_assignments",
        "read_params_file",
        "resolve_device",
        "resolve_threads",
        "set_dotted",
        "train_seed_keys",
    },
    "lsdm.errors": {"DataError", "ParamsError"},
    "lsdm.paths": None,  # where files live, all of it: DVC tracks the files themselves
    "lsdm.io": {
        "READS",
        "ROW_GROUP_BYTES",
        "TMP_TAG",
        "atomic_dir",
        "atomic_path",
        "clean_leftovers",
        "clean_stage_leftovers",
        "iter_table",
        "load_checkpoint",
        "pid_alive",
        "read_json",
        "read_table",
        "release_freed",
        "save_checkpoint",
        "write_json",
        "write_table",
        "write_table_chunks",
    },
    "lsdm.tracking": {"tracked"},
    "lsdm.pipeline": {"SHARED_STAGES", "STAGES"},  # the stage names, for the orchestration
    "lsdm.pipeline.cli": {"main"},
}


def plumbing_imports(rel: str, source: str | None = None) -> list[str]:
    """`module.name` for every name module `rel` imports from a plumbing module outside PLUMBING_API."""
    modules = {m.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for m in PLUMBING}
    out = []
    for node in ast.walk(ast.parse(source if source is not None else (ROOT / rel).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module in modules:
            allowed = PLUMBING_API.get(node.module, set())
            out += [f"{node.module}.{a.name}" for a in node.names if allowed is not None and a.name not in allowed]
        elif isinstance(node, ast.Import):  # `import lsdm.config`: its uses cannot be held to the list
            out += [f"{a.name}.*" for a in node.names if a.name in modules and PLUMBING_API.get(a.name) is not None]
    return out


def test_plumbing_decides_nothing():
    """Plumbing is exempt from the deps, so nothing that decides what a stage computes may live there:
    each name the package takes from a plumbing module is on PLUMBING_API's list. The check itself
    catches the rule that used to live in config.py."""
    files = [p.relative_to(ROOT).as_posix() for p in (ROOT / "lsdm").rglob("*.py")]
    problems = {f: names for f in files if f not in PLUMBING and (names := plumbing_imports(f))}
    assert not problems, (
        f"names taken from plumbing modules that DVC does not track (move them into a stage's deps): {problems}"
    )
    old = "def f(p):\n    from lsdm.config import marginal_terms\n    return marginal_terms(p)\n"
    assert plumbing_imports("lsdm/models/matcher.py", old) == ["lsdm.config.marginal_terms"]
    assert plumbing_imports("lsdm/models/matcher.py", "import lsdm.config\n") == ["lsdm.config.*"]


def module_file(name: str) -> str | None:
    p = Path(*name.split("."))
    for c in (p.with_suffix(".py"), p / "__init__.py"):
        if (ROOT / c).exists():
            return c.as_posix()
    return None


def imported_modules(rel: str) -> set[str]:
    """The lsdm modules `rel` imports anywhere in its body, with the packages each import runs."""
    path = ROOT / rel
    pkg = rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    base = pkg if rel.endswith("__init__.py") else pkg.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                parts = base.split(".")[: len(base.split(".")) - node.level + 1]
                mod = ".".join([*parts, *([mod] if mod else [])])
            names |= {mod, *(f"{mod}.{a.name}" for a in node.names)}
    files = set()
    for name in (n for n in names if n.split(".")[0] == "lsdm"):
        parts = name.split(".")
        files |= {f for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i])))}
    return files - {rel}


# Registries that import their entries by name from params (`task:`, `data.source:`): a stage that
# imports one may run any entry, so it depends on all of them.
BY_NAME = {"lsdm/tasks/__init__.py", "lsdm/data/sources/__init__.py"}


def closure(*start: str) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo += [g for g in imported_modules(f) if g not in PLUMBING]
            if f in BY_NAME:
                todo += [p.relative_to(ROOT).as_posix() for p in (ROOT / f).parent.glob("*.py")]
    return seen


def is_empty_package(rel: str) -> bool:
    """A package __init__ that holds only a docstring runs no code."""
    body = ast.parse((ROOT / rel).read_text()).body
    return rel.endswith("__init__.py") and all(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body
    )


def stage_deps() -> dict[str, tuple[str, list[str], list[str]]]:
    """stage address -> (CLI command, deps, lsdm modules its command runs first), foreach stages expanded."""
    out = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        items = METHOD_NAMES if "foreach" in stage else [None]
        for item in items:
            st = stage.get("do", stage)
            sub = (lambda s, item=item: s.replace("${item}", item)) if item else (lambda s: s)
            deps = [sub(d if isinstance(d, str) else next(iter(d))) for d in st.get("deps", [])]
            command = re.search(r"\blsdm\s+([a-z_]+)", st["cmd"]).group(1)
            entry = [f"lsdm/pipeline/{command}.py", *([f"lsdm/methods/{item}.py"] if item else [])]
            out[f"{name}@{item}" if item else name] = (command, deps, entry)
    return out


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def missing(modules: set[str], deps: list[str]) -> list[str]:
    return sorted(m for m in modules if m not in PLUMBING and not is_empty_package(m) and not covered(m, deps))


def test_every_module_a_stage_imports_is_in_its_deps():
    """Statically: the stage's module (and, for a method's stage, the method's module, which the
    stage imports by name), and everything they import, transitively."""
    problems = {s: miss for s, (_, deps, entry) in stage_deps().items() if (miss := missing(closure(*entry), deps))}
    assert not problems, f"dvc.yaml deps miss modules the stage imports: {problems}"


def test_every_file_a_method_reads_is_in_its_stages_deps():
    from lsdm.methods import METHODS, method

    stages = stage_deps()
    for name in METHODS:
        fit, evaluate = (
            ("fit_matcher", "evaluate") if name == "lsdm" else (f"fit_baseline@{name}", f"evaluate_baseline@{name}")
        )
        for stage, reads in ((fit, method(name).FIT_READS), (evaluate, method(name).SAMPLE_READS)):
            deps = stages[stage][1]
            assert all(covered(p.as_posix(), deps) for p in reads), (
                stage,
                [p for p in reads if not covered(p.as_posix(), deps)],
            )


def test_no_import_cycles():
    files = [p.relative_to(ROOT).as_posix() for p in (ROOT / "lsdm").rglob("*.py")]
    graph = {f: {g for g in imported_modules(f) if not g.endswith("__init__.py")} for f in files}
    cycles = []
    for a in graph:  # depth-first search for a path back to `a`
        stack, seen = [(a, [a])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == a:
                    cycles.append(" -> ".join([*path, a]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


def test_registries_import_their_entries_lazily():
    """Importing a registry (or validating params) loads none of its entries: a stage that builds one
    model, loads one source or runs one method imports only that one."""
    code = (
        "import sys, lsdm.models, lsdm.methods, lsdm.data.sources, lsdm.tasks, lsdm.config as c; c.load_params(); "
        "print(sorted(m for m in sys.modules if m.startswith('lsdm.')))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.replace("'", '"')
    )
    entries = [m for m in loaded if m.startswith(("lsdm.models.", "lsdm.methods.", "lsdm.data.sources."))]
    assert entries == [], entries
    assert (
        "torch"
        not in subprocess.run(
            [sys.executable, "-c", "import sys, lsdm.config as c; c.load_params(); print(' '.join(sys.modules))"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.split()
    )


@pytest.mark.slow
def test_a_real_run_imports_and_reads_only_its_deps(tiny_repro):
    """Traced in the tiny pipeline's `dvc repro` (LSDM_TRACE): each stage's new imports, lazily
    loaded registry entries included, and each pipeline file it read are in its deps."""
    stages = stage_deps()
    lines = [json.loads(x) for x in (tiny_repro.parent / "trace.jsonl").read_text().splitlines()]
    assert {x["stage"] for x in lines} >= {
        "prepare",
        "split",
        "fit_latent",
        "encode",
        "fit_matcher",
        "eval_net",
        "evaluate",
    }
    problems = {}
    for x in lines:
        _, deps, _ = stages[x["stage"] if not x["method"] else f"{x['stage']}@{x['method']}"]
        modules = {f for m in x["modules"] if (f := module_file(m))}
        reads = [r for r in x["reads"] if r.startswith(("data/", "results/")) and not covered(r, deps)]
        if miss := missing(modules, deps) + reads:
            problems[x["stage"]] = miss
    assert not problems, f"dvc.yaml deps miss what the stage imported or read: {problems}"


def test_stages_import_no_heavy_library_they_do_not_use():
    """Imports are most of a small run's time (torch ~2 s, torchvision ~3 s a process): the stages
    without torch (`NO_TORCH`) import none, and fit_latent, which needs no FID, no torchvision."""
    from lsdm.pipeline.cli import EXTRA, NO_TORCH

    def loaded(module: str) -> set[str]:
        code = f"import sys, {module}; print(' '.join(sys.modules))"
        return set(
            subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.split()
        )

    assert {"prepare", "split", "report"} <= NO_TORCH
    for stage in NO_TORCH:
        assert "torch" not in loaded(EXTRA.get(stage, f"lsdm.pipeline.{stage}")), stage
    assert "torchvision" not in loaded("lsdm.pipeline.fit_latent")
