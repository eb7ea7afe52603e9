"""The examples README.md quotes run as they are."""

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, server):
    done = subprocess.run([sys.executable, EXAMPLES / name, server.socket], capture_output=True, text=True,
                          timeout=60, env=os.environ)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_hello(server):
    assert run_example("hello.py", server) == "hello from pid 2\nexit status: 0\n"


def test_many(server):
    assert run_example("many.py", server) == f"exit codes: {list(range(10))}\n"

# python/README.md quotes these examples: tests/readme_snippets.py checks it (ctest "docs: ...").
