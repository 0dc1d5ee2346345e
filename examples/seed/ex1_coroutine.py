# Example 1 of the asyncio notes: a coroutine that awaits another.
import asyncio

async def my_coroutine():
    print("Coroutine started")
    await asyncio.sleep(1)  # Simulate an I/O operation
    print("Coroutine finished")

async def main():
    await my_coroutine()

asyncio.run(main())
