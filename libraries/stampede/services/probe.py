"""``python -m stampede.services.probe DSN URL``: exit 0 when both services answer, else say which did not."""

from __future__ import annotations

import asyncio
import secrets
import sys

from ..errors import StampedeError
from .postgres_target import open_postgres
from .redis_target import open_redis


async def _probe(dsn: str, url: str) -> list[str]:
    problems = []
    for opener, address in ((open_postgres, dsn), (open_redis, url)):
        try:
            target = await opener(address, run_id=f"probe_{secrets.token_hex(4)}", connect_timeout=3.0)
        except StampedeError as error:
            problems.append(str(error))
        else:
            await target.close()
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m stampede.services.probe POSTGRES_DSN REDIS_URL", file=sys.stderr)
        return 2
    problems = asyncio.run(_probe(*argv))
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
