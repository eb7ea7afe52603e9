#!/usr/bin/env python3
"""Launches a command into a pid namespace of its own through a running `nsfork serve`, reads its
output, waits for it and destroys it. Usage: hello.py [SOCKET] (default /run/nsfork/nsfork.sock).
README.md's Embedding section quotes the part between the readme markers; tests/test_examples.py
runs this file."""

import sys

socket_path = sys.argv[1] if len(sys.argv) > 1 else "/run/nsfork/nsfork.sock"

# [readme:python]
import os
import nsfork

with nsfork.Client.connect(socket_path) as client:   # "/run/nsfork/nsfork.sock", say
    r, w = os.pipe()
    ct = client.launch(["sh", "-c", "echo hello from pid $$"], env={"PATH": "/usr/bin:/bin"}, stdout=w)
    os.close(w)                           # the container has its own copy
    with ct:                              # closes its pidfd (ct.fileno(): poll it, signal it)
        print(os.read(r, 100).decode(), end="")
        print("exit status:", client.wait(ct).shell_code)
        client.destroy(ct)                # returns once every process of it is gone
    os.close(r)
# [/readme]
