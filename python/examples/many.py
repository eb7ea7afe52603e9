#!/usr/bin/env python3
"""Launches ten containers at once on one connection with the asyncio client, and waits for them
all. Usage: many.py [SOCKET] (default /run/nsfork/nsfork.sock). README.md's Embedding section
quotes the part between the readme markers; tests/test_examples.py runs this file."""

import sys

socket_path = sys.argv[1] if len(sys.argv) > 1 else "/run/nsfork/nsfork.sock"

# [readme:python-asyncio]
import asyncio
from nsfork.aio import AsyncClient

async def main():
    async with await AsyncClient.connect(socket_path) as client:  # one connection
        env = {"PATH": "/usr/bin:/bin"}
        cts = await asyncio.gather(*(client.launch(["sh", "-c", f"exit {i}"], env=env) for i in range(10)))
        statuses = await asyncio.gather(*(client.wait(ct) for ct in cts))    # exits, as they come
        print("exit codes:", [s.code for s in statuses])
        for ct in cts:
            await client.destroy(ct)
            ct.close()

asyncio.run(main())
# [/readme]
