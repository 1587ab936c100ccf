"""The reference agent service: a real multi-user WebSocket agent backend the suites test out of the box.

Run it with :class:`EmbeddedAgentService` (or ``python -m stampede.agent_service``);
the protocol is described in :mod:`stampede.agent_service.protocol`, the seeded
bugs in :mod:`stampede.agent_service.bugs`.
"""

from .bugs import Bug, parse_bugs
from .embedded import EmbeddedAgentService
from .settings import ServiceSettings

__all__ = ["Bug", "EmbeddedAgentService", "ServiceSettings", "parse_bugs"]
