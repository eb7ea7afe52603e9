"""The examples README.md quotes run as they are."""

import os
import re
import subprocess
import sys
import textwrap
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


def region(path, name):
    """The lines between the markers [name] and [/readme] of `path`, dedented."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if f"[{name}]" in line)
    end = next(i for i in range(start + 1, len(lines)) if "[/readme]" in lines[i])
    return textwrap.dedent("\n".join(lines[start + 1:end]))


def test_the_readme_shows_the_examples_as_they_are():
    # Each `<!-- snippet: FILE REGION -->` in python/README.md is followed by that region, fenced.
    readme = EXAMPLES.parent / "README.md"
    text = readme.read_text()
    announced = re.findall(r"<!-- snippet: (\S+) (\S+) -->\n```\w*\n(.*?)\n```", text, re.S)
    assert len(announced) == 2
    for file, name, shown in announced:
        assert shown == region(EXAMPLES.parent / file, name), f"{readme}: {file} {name} differs"
