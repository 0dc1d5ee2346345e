# Example 2 of the asyncio notes: scheduling a coroutine as a task.
# The notes import asyncio once, in example 1; the import is repeated here so
# that the script runs on its own.
import asyncio

async def fetch_data():
    # Simulate fetching data from a network resource
    await asyncio.sleep(2)
    return "Data fetched!"

async def main():
    task = asyncio.create_task(fetch_data()) #schedule a task 
    print("Fetching data...")
    result = await task # wait for the task to complete
    print(f"Result: {result}")

asyncio.run(main())
