"""Ask `quantplan mcp` for an explained plan with the MCP SDK's client, as an assistant would.

.venv/bin/python examples/api/mcp_client.py
"""

import asyncio
import sys
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters

SERVER = StdioServerParameters(
    command=str(Path(sys.executable).with_name("quantplan")), args=["mcp"]
)


async def main() -> None:
    async with Client(SERVER) as client:
        print("tools:", ", ".join(tool.name for tool in (await client.list_tools()).tools))
        targets = {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}
        result = await client.call_tool("plan", {"targets": targets})
        if result.is_error:
            sys.exit(f"error: {result.structured_content['error']}")
        print(result.structured_content["plan"]["summary"])


asyncio.run(main())
