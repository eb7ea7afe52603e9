#!/usr/bin/env python3
"""The engine nodes for `nsfork-bench engines`: the same set-up the engine suite uses, driven over
stdin/stdout in JSON lines, so that the benchmark times the engines' own commands with nothing of
Python in between.

    python3 nodes.py ENGINE [--pool N]        ENGINE: slurm | podman | containerd | docker

1. It starts the node (common.Node) and prints {"dir", "socket", "oci", "nsfork"}.
2. It reads {"runtimes": {NAME: PATH, ...}}: the runtime binaries the engine is to know, by name
   (the benchmark's timed wrappers of nsfork-oci and runc). It starts the engine's daemons with
   them and prints {"commands": {NAME: ARGV}}: each runs /bin/true through the engine with that
   runtime and removes the container (exit 0).
3. Then, per line read: {"pool": null} -> {"pool": {...}} (the node's warm pool counts).
4. At end of input it stops and removes everything and prints {"closed": true, "left": [...]}
   (whatever it could not remove). An error at any step: {"error": "..."} and exit 1.
Environment: NSFORK_BIN_DIR (the build's bin/), as the suite.
"""

import argparse
import importlib
import json
import sys
import traceback

import common

ENGINES = ("slurm", "podman", "containerd", "docker")


def say(obj):
    print(json.dumps(obj), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("--pool", type=int, default=4)
    args = parser.parse_args()
    module = importlib.import_module(f"node_{args.engine}")
    before = common.Snapshot()
    node = engine = None
    try:
        node = common.Node(pool=args.pool)
        before.watch(node)
        say({"dir": str(node.dir), "socket": str(node.socket), "oci": str(node.oci), "nsfork": str(node.nsfork)})
        line = sys.stdin.readline()
        if not line:
            return 0
        runtimes = json.loads(line)["runtimes"]
        engine = module.EngineNode(node, runtimes)
        say({"commands": {name: [str(a) for a in engine.true_command(name)] for name in runtimes}})
        for line in sys.stdin:
            request = json.loads(line)
            if "pool" in request:
                say({"pool": node.pool()})
            else:
                say({"error": f"unknown request {line.strip()}"})
    except (common.Unavailable, Exception) as e:  # the benchmark shows it and goes on
        say({"error": f"{args.engine}: {e}", "trace": traceback.format_exc()})
        return 1
    finally:
        left = []
        for close in ((engine.close if engine else None), (node.close if node else None)):
            try:
                if close:
                    close()
            except Exception as e:
                left.append(str(e))
        left += before.leaks()
        say({"closed": True, "left": left})
    return 0


if __name__ == "__main__":
    sys.exit(main())
