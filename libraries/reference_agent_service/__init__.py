"""The reference agent service: a real multi-user WebSocket agent backend the suites test out of the box.

It is the system under test, not part of the harness: it imports nothing from
Stampede, and Stampede starts it as a process (``python -m reference_agent_service``)
and talks to it over its protocol, as it would to any user's service. The
protocol is described in :mod:`reference_agent_service.protocol`, the seeded
bugs in :mod:`reference_agent_service.bugs`.
"""
