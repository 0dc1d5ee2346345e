# Example 3 of the asyncio notes: handling an exception inside a coroutine.
# The notes import asyncio once, in example 1; the import is repeated here so
# that the script runs on its own.
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
