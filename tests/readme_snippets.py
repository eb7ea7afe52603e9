#!/usr/bin/env python3
"""Checks that README.md (or each README named) shows the code the examples and tests really compile and run.

A snippet in the README is announced by a comment naming the file and the region it quotes:

    <!-- snippet: examples/agent/agent.cpp readme:sync -->
    ```cpp
    ...
    ```

The region is the lines between a line containing `[readme:sync]` and the next line containing
`[/readme]` in that file (the marker lines themselves excluded), with their common indentation
removed. A region named `*` is the whole file (configuration files an operator installs as they
are: packaging/engines/, whose JSON has no comment to mark a region with). The fenced block must be
exactly that. Exits non-zero naming every snippet that differs,
every region that is missing, and when the README announces no snippet at all.
"""
import difflib
import pathlib
import re
import sys
import textwrap

ANNOUNCE = re.compile(r"^<!-- snippet: (\S+) (\S+) -->$")


def region(path: pathlib.Path, name: str) -> str | None:
    if name == "*":
        return path.read_text()
    lines = path.read_text().splitlines()
    start = next((i for i, l in enumerate(lines) if f"[{name}]" in l), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if "[/readme]" in lines[i]), None)
    if end is None:
        return None
    return textwrap.dedent("\n".join(lines[start + 1:end]))


def main(readme_path: str) -> int:
    readme = pathlib.Path(readme_path)
    root = readme.parent
    lines = readme.read_text().splitlines()
    failures, checked = [], 0
    for i, line in enumerate(lines):
        m = ANNOUNCE.match(line.strip())
        if not m:
            continue
        file, name = m.groups()
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            failures.append(f"{readme}:{i + 1}: snippet {file} {name} is not followed by a fenced block")
            continue
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            failures.append(f"{readme}:{i + 1}: the fenced block of {file} {name} is not closed")
            continue
        shown = "\n".join(lines[i + 2:end])
        source = root / file
        if not source.is_file():
            failures.append(f"{readme}:{i + 1}: {file} does not exist")
            continue
        real = region(source, name)
        if real is None:
            failures.append(f"{readme}:{i + 1}: {file} has no region [{name}] ... [/readme]")
            continue
        checked += 1
        if shown.rstrip() != real.rstrip():
            diff = difflib.unified_diff(real.rstrip().splitlines(), shown.rstrip().splitlines(),
                                        f"{file} [{name}]", f"{readme}:{i + 3}", lineterm="")
            failures.append("\n".join(diff))
    if checked == 0 and not failures:
        failures.append(f"{readme} announces no snippet (<!-- snippet: FILE REGION -->)")
    for f in failures:
        print(f, file=sys.stderr)
    if not failures:
        print(f"{readme}: {checked} snippets match their sources")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(max(main(path) for path in (sys.argv[1:] or ["README.md"])))
