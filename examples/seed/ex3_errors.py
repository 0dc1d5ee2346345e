# Example 3 of the asyncio notes: handling an
# exception inside a coroutine.  The notes rely on example 1's
# `import asyncio`; it is repeated so that the example runs on its own.
import asyncio

async def might_fail():
    try:
        # some operation that might fail
        raise Exception("Something went wrong!")
    except Exception as e:
        print(f"Error: {e}")

async def main():
  await might_fail()
asyncio.run(main())
