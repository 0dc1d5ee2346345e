# Example 4 of the asyncio notes: asyncio.gather.
# The notes rely on example 1's `import asyncio`; it is repeated so that the
# example runs on its own.
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
