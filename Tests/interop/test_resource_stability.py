"""Finished calls leave nothing behind (issue 7, item 12's soak, in miniature for `make test`).

A retain cycle between a call's execution and its backend handle once kept every finished call alive, about
2 KiB each: `make bench`'s ten-minute soak found it as RSS climbing by a gigabyte a minute. Here a few
thousand calls through both kinds of backend must not grow the gateway's memory, descriptors or children.
"""
from __future__ import annotations

import asyncio
import os
import time

from conftest import BACKEND_DIAG, BACKEND_EXAMPLE, GatewayPool, http_client, initialize, make_config, run


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _children(pid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    text = stat.read()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                count += 1
    return count


async def _calls(url: str, total: int, concurrency: int = 8) -> None:
    async with http_client() as client:
        session = await initialize(client, url)

        async def worker(index: int) -> None:
            for n in range(index, total, concurrency):
                tool = "diag__echo" if n % 2 else "example__echo"
                reply = await session.call(tool, {"text": f"m{n}"})
                assert reply.text() == f"m{n}"

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        await session.delete()


def test_memory_fds_and_children_stay_flat_over_thousands_of_calls(gateways: GatewayPool) -> None:
    gw = gateways.start(make_config(backends={"diag": dict(BACKEND_DIAG), "example": dict(BACKEND_EXAMPLE)}))
    pid = gw.proc.pid
    run(_calls(gw.url, 1500))  # warm-up: allocator pools, caches, metric series
    before = (_rss(pid), len(os.listdir(f"/proc/{pid}/fd")), _children(pid))
    run(_calls(gw.url, 6000))
    # The client's connections close as it leaves; give the gateway a moment to see the FINs.
    deadline = time.monotonic() + 5
    while len(os.listdir(f"/proc/{pid}/fd")) > before[1] and time.monotonic() < deadline:
        time.sleep(0.05)
    after = (_rss(pid), len(os.listdir(f"/proc/{pid}/fd")), _children(pid))
    growth = after[0] - before[0]
    # With the cycle, 6000 calls kept about 12 MiB; the allocator's own noise is well under 4 MiB.
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 6000 calls"
    assert after[1] <= before[1], f"open fds {before[1]} -> {after[1]}"
    assert after[2] == before[2] == 1, f"child processes {before[2]} -> {after[2]}"
