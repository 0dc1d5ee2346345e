# Example 4 of the asyncio notes: running coroutines concurrently with
# asyncio.gather.  The notes import asyncio once, in example 1; the import is
# repeated here so that the script runs on its own.
import asyncio

async def coroutine1():
    await asyncio.sleep(1)
    return 1

async def coroutine2():
    await asyncio.sleep(2)
    return 2

async def main():
  results = await asyncio.gather(coroutine1(), coroutine2())
  print(f"Results: {results}")

asyncio.run(main())
