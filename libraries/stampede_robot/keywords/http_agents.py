"""HTTP + SSE agent threads: the tool (ConcurrentAgents)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from robot.api.deco import keyword
from robot.api.types import Secret

from stampede.errors import ConfigurationError, StampedeError
from stampede.services.agent_service_target import AgentServiceTarget, display_url
from stampede.units import format_duration, positive_seconds
from stampede.workloads.http_agents import HttpAgentTool
from stampede.workloads.http_protocol import HttpProtocol, reference_service
from stampede.workloads.websocket_protocol import read_protocol
from stampede.workloads.websocket_values import TokenSource

from ..component import LibraryComponent
from ..html import table
from .websocket import REFERENCE, _context_bytes


class HttpToolKeywords(LibraryComponent):
    """Defines the HTTP + SSE agent tool (ConcurrentAgents)."""

    @keyword(tags=["workloads", "http"])
    def define_http_agent_tool(
        self,
        name: str,
        *,
        protocol: str = REFERENCE,
        base_url: str | None = None,
        policy: str = "reject",
        mode: str = "stream",
        threads_per_user: int = 1,
        read_every: int | None = None,
        cut_after_events: int | None = None,
        cancel_after_events: int | None = None,
        tokens: dict[str, Secret | str] | None = None,
        context_size: str = "2 KB",
        answer_timeout: timedelta = timedelta(seconds=10),
        run_timeout: timedelta = timedelta(seconds=30),
        connect_timeout: timedelta = timedelta(seconds=10),
        connections: int | None = None,
    ) -> None:
        """Defines a tool whose agents are users of an HTTP + SSE agent service: threads, runs, streamed events.

        Before the start barrier each user gets ``threads_per_user`` thread(s),
        made by the first of its agents; the user's other agents share them, so
        `Launch Agents` with 8 agents and ``users=2`` puts 4 concurrent runs on
        each thread. Each operation starts one run on its agent's thread with a
        marker of its own and ``policy`` (``reject``, ``enqueue``, ``interrupt``
        or ``rollback``: what the service is to do with a run started while
        another is active), then reads its SSE stream to the run's end
        (``mode=wait``: one request whose answer is the ended run). Every event
        is recorded with its arrival time; the first one gives the startup
        latency (the metric ``first_event_p95``), the end ``run_p95``. A stream
        cut before its run ended is resumed with ``Last-Event-ID`` when the
        protocol says the service can (``cut_after_events`` cuts every run's
        stream after that many events, to test it; ``cancel_after_events`` asks
        the service to cancel each run after that many of its events, with the
        protocol's ``cancel`` request). With ``read_every=N`` every
        N-th operation of an agent then reads its thread's state.

        What the service answered each run (accepted, or refused with which
        status), how each run ended, the messages it reported appended, and
        the thread reads are kept for the thread checks; a failure is one of
        ``connect_failed``, ``unauthorized`` (401/403), ``refused`` (a refusal
        status, e.g. 409 under reject), ``http_error``, ``stream_error`` (the
        service's error event, or an error status on a resume), ``bad_event``
        (``data`` that is not JSON, a field path that matches nothing), ``cut``
        and ``timeout``, each with what the service said.

        ``protocol`` is ``reference`` (the bundled agent service's HTTP API,
        ``docs/REFERENCE_HTTP_API.md``), a JSON text or the path of a JSON file
        describing your service: ``base_url``; ``auth`` (``bearer``, ``header``
        with ``header_name`` and a ``header_value`` template, ``query`` with
        ``query_param``, or ``none``); the ``token`` claims Stampede signs (as
        for `Define WebSocket Agent Tool`); ``requests`` (``create_thread``,
        ``run_stream``, ``run_wait``, ``read_state``, ``read_history``,
        ``list_runs``, ``cancel``, ``resume_stream``: each a ``method``, a
        ``path`` and a JSON ``body`` with placeholders such as ``{thread}``,
        ``{marker}``, ``{policy}``, ``{run_id}``, ``{user}``, ``{text}``);
        ``answers`` and ``events`` (dotted field paths: the thread id, the
        message list and each message's id, run and marker; each listed run's
        id, status and, where the service gives them, ``run_marker``,
        ``run_started_at`` and ``run_ended_at``, in seconds or ISO 8601, which
        the thread checks use to order and time runs; an event read as
        ``{"event", "id", "data"}``, so ``data.run_id`` or ``id``);
        ``queued_events``, ``started_events``, ``message_events``,
        ``terminal_events`` (each end event and its status: ``success``,
        ``interrupted``, ``rolled_back``, ``failed``), ``error_events``;
        ``statuses`` (the service's status words); ``policies`` (its word for
        each policy); ``refusal_statuses`` (default ``[409]``);
        ``messages_per_run`` (a number, null, or a path into the run request's
        body); ``resume`` (true or false). A protocol names only what differs
        from the reference; a mistake fails here, naming the key. Example (a
        service with API keys in ``X-Api-Key`` and its own words):

        | {"auth": "header", "header_name": "X-Api-Key", "header_value": "{token}",
        |  "requests": {"create_thread": {"method": "POST", "path": "/conversations", "body": {}},
        |               "run_stream": {"method": "POST", "path": "/conversations/{thread}/turns",
        |                              "body": {"tag": "{marker}", "lines": 2, "if_busy": "{policy}"}},
        |               "read_state": {"method": "GET", "path": "/conversations/{thread}"},
        |               "list_runs": {"method": "GET", "path": "/conversations/{thread}/turns"},
        |               "resume_stream": {"method": "GET", "path": "/conversations/{thread}/turns/{run_id}/events"},
        |               "run_wait": null, "read_history": null, "cancel": null},
        |  "answers": {"thread_id": "conversation.id", "state_messages": "transcript", "message_id": "mid",
        |              "message_run_id": "turn", "message_marker": "tag", "runs": "turns", "run_id": "id",
        |              "run_status": "state", "history_states": null, "wait_run_id": null, "wait_messages": null},
        |  "events": {"seq": "id", "run_id": "data.turn", "user": "data.owner", "marker": "data.tag",
        |             "thread_id": null, "message_id": "data.mid", "status": null},
        |  "queued_events": ["turn.waiting"], "started_events": ["turn.begin"], "message_events": ["turn.line"],
        |  "terminal_events": {"turn.done": "success", "turn.stopped": "interrupted", "turn.undone": "rolled_back"},
        |  "statuses": {"waiting": "pending", "active": "running", "done": "success", "stopped": "interrupted",
        |               "undone": "rolled_back"},
        |  "policies": {"reject": "refuse", "enqueue": "queue", "interrupt": "preempt", "rollback": "revert"},
        |  "refusal_statuses": [423], "messages_per_run": "lines"}

        The service under test is, in order: ``base_url``, the HTTP address of
        the agent service in use (`Start Agent Service`, `Use Agent Service`),
        and only then the protocol's own ``base_url``; the keyword logs which
        one it used. Users present ``tokens`` (a dictionary user → token: the
        API keys your service gave them; make each a Robot ``Secret`` so no log
        shows it) or, without them, JWTs signed with
        the secret of the agent service in use; when Stampede can sign none,
        the keyword fails now, naming what to set.

        ``answer_timeout`` bounds the wait for a run's first event (and every
        other answer), ``run_timeout`` a run from its request to its end,
        ``connect_timeout`` opening a connection; all agents share one
        connection pool (``connections`` caps it; default: no cap). Launch with
        an ``operation_timeout`` at least as long as the bound this keyword logs.

        | Define HTTP Agent Tool | threads |
        | Define HTTP Agent Tool | queued | policy=enqueue | read_every=1 |
        | Define HTTP Agent Tool | resuming | cut_after_events=2 |
        | Define HTTP Agent Tool | cancelling | cancel_after_events=2 |
        | Define HTTP Agent Tool | waiting | mode=wait | threads_per_user=2 |
        | Define HTTP Agent Tool | mine | protocol=${CURDIR}/my_http.json | tokens=${API_KEYS} |
        """
        in_use = self.runtime.services.agent_service if self.runtime.services is not None else None
        reference = protocol.strip().lower() == REFERENCE
        data = {} if reference else read_protocol(protocol, kind="HTTP")
        chosen, origin = _service_url(base_url, in_use)
        if reference:
            if chosen is None:
                raise StampedeError(
                    "No agent service with an HTTP address in use: call Start Agent Service (or Use Agent Service) "
                    "first, usually in the suite setup, or give base_url."
                )
            spec = reference_service(chosen)
        else:
            spec = HttpProtocol.from_dict(data, base_url=chosen)
        tool = HttpAgentTool(
            spec,
            tokens=_tokens(spec, in_use, tokens),
            name=name,
            policy=policy,
            mode=mode.strip().lower(),
            threads_per_user=threads_per_user,
            read_every=read_every,
            cut_after_events=cut_after_events,
            cancel_after_events=cancel_after_events,
            connect_timeout=positive_seconds(connect_timeout, what="connect_timeout"),
            answer_timeout=positive_seconds(answer_timeout, what="answer_timeout"),
            run_timeout=positive_seconds(run_timeout, what="run_timeout"),
            context_bytes=_context_bytes(context_size),
            connections=connections,
        )
        self.runtime.tools[name] = tool
        own = data.get("base_url")
        if chosen is None:
            origin = "the protocol's own base_url"
        elif isinstance(own, str) and own.rstrip("/") != spec.base_url:
            origin += f"; the protocol's own base_url {display_url(own)} is not used"
        self.log(f"HTTP agent tool {name!r} talks to {display_url(spec.base_url)} ({origin}).")
        rows = [*tool.describe().items(), ("launch with operation_timeout ≥", format_duration(tool.operation_bound))]
        self.log_html(table(["", ""], rows, f"HTTP agent tool {name}"))


def http_url(service: AgentServiceTarget | None) -> str | None:
    """The HTTP address of the agent service in use (None: none in use, or one without an HTTP API)."""
    return service.http_url if service is not None else None


def _service_url(base_url: str | None, in_use: AgentServiceTarget | None) -> tuple[str | None, str]:
    """The base URL of the service under test and where it came from (None: only the protocol may name one)."""
    if base_url:
        return base_url, "given as base_url"
    address = http_url(in_use)
    if address is not None:
        return address, "the agent service in use, see Use Agent Service"
    return None, ""


def _tokens(
    protocol: HttpProtocol, in_use: AgentServiceTarget | None, given: Mapping[str, Secret | str] | None
) -> TokenSource | None:
    """The users' tokens: those given, else signed as the protocol's token spec says; ConfigurationError if neither."""
    if given is not None:
        tokens = {user: token.value if isinstance(token, Secret) else token for user, token in given.items()}
        if not all(isinstance(token, str) and token for token in tokens.values()):
            raise ConfigurationError("tokens must be a dictionary of user id → token (e.g. &{API_KEYS})")
        return tokens
    if not protocol.needs_token():
        return None
    if in_use is None:
        raise ConfigurationError(
            f"The HTTP protocol for {display_url(protocol.base_url)} sends a token (auth {protocol.auth.value}), but "
            "no tokens were given and no agent service is in use to sign them for: give tokens (a dictionary user "
            "id → token), or call Use Agent Service first (its secret in STAMPEDE_AGENT_JWT_SECRET or "
            "${AGENT_SERVICE_JWT_SECRET})."
        )
    return in_use.token_issuer(protocol.token)
