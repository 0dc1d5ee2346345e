"""Some CPU work, a 0.2 s sleep, more CPU work: what do profilers make of
the sleep?  (docs/profiling.md)"""

import asyncio

def crunch():
    x = 0
    for i in range(300_000):
        x += i * i

async def main():
    crunch()
    await asyncio.sleep(0.2)
    crunch()

asyncio.run(main())
