"""The layer contract: imports point one way, bottom to top engines <- realtime <- training <-
benchmarks, and realtime/face/ is a leaf of realtime.

    pytest tests/test_layers.py

Every import in every module of the four packages is read with ``ast``: at the top, inside
functions and under ``TYPE_CHECKING`` alike, since a lazy import is still a dependency. The
one exception is the command line's dispatch by name: ``realtime/cli.py`` may import training
and benchmarks inside its functions (``realtime-unmask train``, ``evaluate``, ``bench``), never
at module level. Dynamic imports (``importlib.import_module``, ``__import__``) are allowed only
there too, so the contract cannot be sidestepped by a string.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("engines", "realtime", "training", "benchmarks")
"""Bottom to top: each package may import only those before it (and itself)."""
DISPATCHER = "realtime/cli.py"
"""The only module that may reach upwards, inside its functions."""
FACE_LEAF = "realtime.face"
FACE_MAY_IMPORT = ("realtime.face", "realtime.types")
"""realtime/face/ is what training uses to align faces like the pipeline: nothing of the
pipeline may come with it."""
DYNAMIC_IMPORTS = {"import_module", "__import__"}


def module_name(path: str) -> str:
    """``realtime/face/align.py`` -> ``realtime.face.align`` (a package is its __init__)."""
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: str, source: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import in ``source``; relative
    imports are resolved against ``path``'s package."""
    tree = ast.parse(source, filename=path)
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef
                                               | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package[: len(package) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.append((base, child.lineno, inside))
                # ``from realtime import face`` imports realtime.face, not only realtime
                found.extend((f"{base}.{alias.name}", child.lineno, inside)
                             for alias in child.names if alias.name != "*")
            elif isinstance(child, ast.Call) and _called_name(child.func) in DYNAMIC_IMPORTS:
                found.append((f"<dynamic {_called_name(child.func)}>", child.lineno, inside))
            visit(child, inside)

    visit(tree, False)
    return found


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def violations(path: str, source: str) -> list[str]:
    """Each import of ``source`` (the file ``path``, relative to the repository) that breaks
    the contract, as "path:line imports name (why)"."""
    here = module_name(path)
    layer = LAYERS.index(here.split(".")[0])
    broken: list[str] = []
    lines_seen: set[int] = set()  # ``from a.b import c`` is a.b and a.b.c: one report
    for name, line, in_function in imports(path, source):
        if line in lines_seen:
            continue
        why = _why_not(here, layer, name, dispatch_ok=path == DISPATCHER and in_function)
        if why:
            broken.append(f"{path}:{line} {why}")
            lines_seen.add(line)
    return broken


def _why_not(here: str, layer: int, name: str, *, dispatch_ok: bool) -> str | None:
    """Why module ``here`` (in ``LAYERS[layer]``) may not import ``name``; None if it may."""
    if name.startswith("<dynamic"):
        return None if dispatch_ok else (f"{name[1:-1]} (dynamic imports only in "
                                         f"{DISPATCHER}'s functions)")
    top = name.split(".")[0]
    if top in LAYERS and LAYERS.index(top) > layer and not dispatch_ok:
        return f"imports {name} ({LAYERS[layer]} is below {top})"
    in_leaf = here == FACE_LEAF or here.startswith(FACE_LEAF + ".")
    if in_leaf and top == "realtime" and name != "realtime" and not any(
            name == allowed or name.startswith(allowed + ".") for allowed in FACE_MAY_IMPORT):
        return f"imports {name} ({FACE_LEAF} is a leaf: only {', '.join(FACE_MAY_IMPORT)})"
    return None


def package_files() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for layer in LAYERS
                  for p in (REPO / layer).rglob("*.py"))


def test_every_package_is_read() -> None:
    files = package_files()
    for layer in LAYERS:
        assert sum(f.startswith(layer + "/") for f in files) >= 3, layer
    assert DISPATCHER in files and any(f.startswith("realtime/face/") for f in files)


def test_imports_point_down_the_layers() -> None:
    broken = [v for path in package_files()
              for v in violations(path, (REPO / path).read_text(encoding="utf-8"))]
    assert not broken, "imports against the layers:\n" + "\n".join(broken)


def test_the_dispatcher_reaches_upwards_only_inside_functions() -> None:
    """The exception is used (so it is still needed) and stays lazy."""
    found = imports(DISPATCHER, (REPO / DISPATCHER).read_text(encoding="utf-8"))
    upwards = [(name, inside) for name, _, inside in found
               if name.split(".")[0] in ("training", "benchmarks")]
    assert upwards and all(inside for _, inside in upwards)


@pytest.mark.parametrize(
    ("path", "source", "broken"),
    [
        ("engines/x.py", "import numpy\nfrom engines.base import Engine\n", False),
        ("engines/x.py", "from training import checkpoint\n", True),
        ("engines/x.py", "def f():\n    import realtime.types\n", True),
        ("engines/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from realtime.types import Face\n", True),
        ("engines/sub/x.py", "from ...training import data\n", True),
        ("engines/x.py", "from . import base\n", False),
        ("realtime/x.py", "import engines\nfrom realtime import types\n", False),
        ("realtime/x.py", "import training.common\n", True),
        ("realtime/x.py", "def f():\n    from benchmarks import bench\n", True),
        ("realtime/cli.py", "def f():\n    from benchmarks import bench\n", False),
        ("realtime/cli.py", "from training import evaluate\n", True),
        ("realtime/cli.py", "def f():\n    import importlib\n"
                            "    importlib.import_module('training.x')\n", False),
        ("realtime/x.py", "import importlib\nimportlib.import_module('training.x')\n", True),
        ("realtime/x.py", "def f():\n    return __import__('training')\n", True),
        ("training/x.py", "from realtime.face import mesh\nimport engines.models\n", False),
        ("training/x.py", "def f():\n    from benchmarks.machine import versions\n", True),
        ("benchmarks/x.py", "import training.common, realtime.loop, engines\n", False),
        ("realtime/face/x.py", "from realtime.face import mesh\nfrom realtime.types import "
                               "Closing\nimport engines\n", False),
        ("realtime/face/x.py", "from realtime.pipeline import Pipeline\n", True),
        ("realtime/face/x.py", "from realtime import tracking\n", True),
        ("realtime/face/x.py", "from .. import loop\n", True),
    ],
)
def test_the_checker_catches_imports_against_the_layers(
    path: str, source: str, broken: bool
) -> None:
    assert bool(violations(path, source)) == broken, violations(path, source)
