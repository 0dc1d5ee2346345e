"""pyinstrument's async mode started inside a coroutine, on asyncio or (with
--turboloop) on turboloop.  (docs/profiling.md)"""

import asyncio
import sys

from pyinstrument import Profiler

def crunch():
    x = 0
    for i in range(300_000):
        x += i * i

async def main():
    p = Profiler(async_mode="enabled", interval=0.001)
    with p:
        crunch()
        await asyncio.sleep(0.2)
        crunch()
    print(p.output_text(color=False, unicode=False, show_all=False))

if "--turboloop" in sys.argv:
    import turboloop
    turboloop.run(main())
else:
    asyncio.run(main())
