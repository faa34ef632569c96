"""The leak check itself can fail: a test that leaves a thread, a child process or a forkserver
worker behind is failed by the ``no_leaks`` fixture of ``conftest.py`` (run here on a copy)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

LEAKY = '''
import multiprocessing
import threading
import time

HOLD = threading.Event()
KEEP = []


def test_leaves_a_thread():
    threading.Thread(target=HOLD.wait, args=(30,), daemon=True).start()


def test_leaves_a_child_process():
    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(30,), daemon=True)
    process.start()
    KEEP.append(process)


def test_leaves_a_forkserver_worker():
    # Its parent is the forkserver, not this process: the check must look below its children.
    process = multiprocessing.get_context("forkserver").Process(target=time.sleep, args=(30,), daemon=True)
    process.start()
    KEEP.append(process)


def test_cleans_up():
    thread = threading.Thread(target=HOLD.wait, args=(0.01,))
    thread.start()
    thread.join(30)
'''


def test_the_leak_check_fails_each_kind_of_leak(tmp_path):
    conftest = Path(__file__).with_name("conftest.py").read_text()
    assert "GRACE = 5.0" in conftest
    (tmp_path / "conftest.py").write_text(conftest.replace("GRACE = 5.0", "GRACE = 0.5"))  # fail sooner
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(LEAKY))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
                           "addopts=", "test_leaky.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "300"})
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "test_leaves_a_thread - AssertionError: threads left behind" in out
    assert "test_leaves_a_child_process - AssertionError: processes left behind" in out
    assert "test_leaves_a_forkserver_worker - AssertionError: processes left behind" in out
    assert "4 passed, 3 errors" in out  # the tests themselves pass; the check fails each leaky one
