"""The package as users get it: a small public API, a side-effect-free import, and vendoring."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import llmcompiler

PACKAGE = Path(llmcompiler.__file__).parent


def run_python(code: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_starts_nothing_and_loads_no_submodule(tmp_path):
    out = run_python("""
        import logging, sys, threading
        handlers = len(logging.getLogger().handlers)
        import llmcompiler
        loaded = sorted(m for m in sys.modules if m.startswith("llmcompiler."))
        print(threading.active_count(), len(logging.getLogger().handlers) - handlers, loaded)
    """, cwd=PACKAGE.parent)
    assert out.split() == ["1", "0", "[]"]


def test_every_public_name_resolves_and_is_documented():
    for name in llmcompiler.__all__:
        value = getattr(llmcompiler, name)
        assert value.__doc__, f"{name} has no docstring"
    assert "Engine" in dir(llmcompiler)


def test_the_folder_alone_works_vendored_under_another_package(tmp_path):
    vendor = tmp_path / "myapp" / "_vendor"
    vendor.mkdir(parents=True)
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (vendor / "__init__.py").write_text("")
    shutil.copytree(PACKAGE, vendor / "llmcompiler", ignore=shutil.ignore_patterns("__pycache__"))
    out = run_python("""
        import sys
        from myapp._vendor.llmcompiler import run_tasks
        result = run_tasks("1. add(1, 2)\\n2. add($1, 10)\\n", {"add": lambda a, b: a + b})
        print(result.observations[2], any(m == "llmcompiler" or m.startswith("llmcompiler.")
                                          for m in sys.modules))
    """, cwd=tmp_path)
    assert out.split() == ["13", "False"]
