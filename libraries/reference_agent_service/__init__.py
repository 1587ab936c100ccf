"""The reference agent service: a real multi-user WebSocket and HTTP + SSE agent backend the suites test out of the box.

It is the system under test, not part of the harness: it imports nothing from
Stampede, and Stampede starts it as a process (``python -m reference_agent_service``)
and talks to it over its protocol, as it would to any user's service. The
protocol is described in :mod:`reference_agent_service.protocol` (its HTTP API in
``docs/REFERENCE_HTTP_API.md``), the seeded bugs in :mod:`reference_agent_service.bugs`.
"""
