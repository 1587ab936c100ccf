"""The Stampede reference MCP tool server: a real MCP server (the official ``mcp`` SDK, Streamable HTTP) to test.

Its tools deduct a user's credits, append to a user's notes and sleep, against
PostgreSQL tables in the schema it is given; each user proves who it is with a
bearer JWT. Seeded bugs (:mod:`.bugs`), all off by default, plant the
concurrency defects MCP servers are known for. Run it with
``python -m reference_mcp_server``; like the reference agent service it imports
nothing of Stampede's.
"""
