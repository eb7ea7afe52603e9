"""Fixtures of the engine suite (one pytest process per engine: tests/engines/CMakeLists.txt).

`node` (session): the nsfork node every engine of the file drives (common.Node). After the
session — the engines' own fixtures have stopped their daemons by then — the suite-wide check:
no process, mount, cgroup or network link the session made is left (a fixture that fails to
clean up fails the run). Without root or an engine's packages the tests skip with the reason;
with CI=true they fail instead.
"""

import collections
import os

import pytest

import common


def unavailable(reason):
    if common.CI:
        pytest.fail(f"{reason} (CI=true: a skip is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node():
    try:
        before = common.Snapshot()
        n = common.Node()
    except common.Unavailable as e:
        unavailable(str(e))
    before.watch(n)
    yield n
    n.close()
    left = before.leaks()
    assert not left, "the engine suite left behind:\n  " + "\n  ".join(left)


@pytest.fixture(scope="session")
def start_engine(node):
    """`yield from start_engine(node_X, runtimes)` in a module fixture: the engine's EngineNode on
    the node, knowing `runtimes` (name -> binary), closed after the module; unavailable() when
    the engine is not installed."""
    def start(module, runtimes):
        try:
            engine = module.EngineNode(node, runtimes)
        except common.Unavailable as e:
            unavailable(str(e))
        yield engine
        engine.close()
    return start


# Anything skipped and nothing failed: the exit code ctest takes for "skipped"
# (NSFORK_PYTEST_SKIP_CODE), so that a ctest line never says "Passed" for a file whose tests did
# not all run.
_outcomes = collections.Counter()


def pytest_runtest_logreport(report):
    if report.when == "call" or report.skipped:
        _outcomes[report.outcome] += 1


def pytest_sessionfinish(session, exitstatus):
    code = os.environ.get("NSFORK_PYTEST_SKIP_CODE")
    if code and exitstatus == 0 and _outcomes["skipped"]:
        session.exitstatus = int(code)
