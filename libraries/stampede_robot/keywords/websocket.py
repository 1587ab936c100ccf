"""WebSocket agent sessions: the tool (ConcurrentAgents) and the checks on what users received (LockConflicts)."""

from __future__ import annotations

from datetime import timedelta

from robot.api.deco import keyword

from stampede.checkers.agent_credits import check_agent_credits, completed_runs, starting_credits
from stampede.checkers.answers import check_answered
from stampede.checkers.contamination import check_no_contamination
from stampede.checkers.duplicate_ids import check_unique_ids
from stampede.checkers.event_ordering import check_event_ordering
from stampede.errors import ConfigurationError, StampedeError
from stampede.metrics import LatencySummary
from stampede.services.agent_service_target import AgentServiceTarget, display_url
from stampede.services.config import AGENT_SERVICE_URL_ENV, resolve_agent_service_url
from stampede.units import format_duration, positive_seconds
from stampede.verdicts import Verdict
from stampede.workloads.websocket_agents import WebSocketAgentTool
from stampede.workloads.websocket_protocol import WebSocketProtocol, read_protocol, reference_service
from stampede.workloads.websocket_values import TokenSource

from ..component import LibraryComponent
from ..html import table
from ..runtime import LaunchRecord, Runtime
from .resources import _size

REFERENCE = "reference"
_PHASES = (
    ("connect", "connect (open + authenticate)"),
    ("first_event", "startup (send → first event)"),
    ("run", "run (send → done)"),
    ("resume", "resume after a drop"),
)


class WebSocketToolKeywords(LibraryComponent):
    """Defines the WebSocket agent tool (ConcurrentAgents)."""

    @keyword(tags=["workloads", "websocket"])
    def define_websocket_agent_tool(
        self,
        name: str,
        *,
        protocol: str = REFERENCE,
        url: str | None = None,
        context_size: str = "2 KB",
        answer_timeout: timedelta = timedelta(seconds=10),
        run_timeout: timedelta = timedelta(seconds=30),
        connect_timeout: timedelta = timedelta(seconds=10),
        connect_early: bool = False,
        drop_after_events: int | None = None,
        runs_at_once: int = 1,
    ) -> None:
        """Defines a tool whose agents are users of a WebSocket agent service: connect, authenticate, run agents.

        Each agent is one user. It opens its WebSocket in its first operation
        (or, with ``connect_early``, before the start barrier so all sessions
        exist at once), then each operation sends one agent run carrying a
        context of ``context_size`` and the agent's own marker, and reads the
        run's events until it is done. Times recorded per operation give the
        metrics ``connect_p95``, ``first_event_p95`` (startup) and ``run_p95``
        for `Thresholds Should Hold`.

        ``protocol`` is ``reference`` (the bundled agent service's protocol), a
        JSON text or the path of a JSON file describing your service's protocol
        (see README, "Pointing it at your own services"): its templates, field
        paths, lifecycle and the claims of the JWT each user presents (its
        ``"token"`` object: ``subject_claim`` default ``sub``, ``issuer`` default
        ``stampede-agent-service``, ``audience``, extra ``claims``, ``algorithm``
        default ``HS256``, ``lifetime`` default ``1 h``).

        The service under test is, in order: ``url``, the agent service in use
        (`Use Agent Service`, which reads ``${AGENT_SERVICE_URL}`` and
        ``STAMPEDE_AGENT_SERVICE_URL``), those variables themselves, and only then
        the protocol's own ``url``; the keyword logs which one it used. Users
        present tokens signed with the secret of the agent service in use: when
        Stampede cannot sign them (your service, no secret given), the keyword
        fails now, naming the variable to set.

        ``answer_timeout`` bounds the wait for
        the first answer, ``run_timeout`` a whole run. ``drop_after_events``
        drops each connection after that many events of every run and resumes
        the session on a new one. ``runs_at_once`` starts that many runs per
        operation on one session, each on a thread of its own, so one user's
        runs overlap (what a per-user lost update needs). Launch with an
        ``operation_timeout`` at least as long as the bound this keyword logs.

        | Define WebSocket Agent Tool | chat |
        | Define WebSocket Agent Tool | chat | context_size=4 KB | run_timeout=10 s |
        | Define WebSocket Agent Tool | resuming | drop_after_events=2 |
        | Define WebSocket Agent Tool | busy users | runs_at_once=10 |
        | Define WebSocket Agent Tool | mine | protocol=${CURDIR}/my_protocol.json | url=wss://agents.example/ws |
        """
        in_use = self.runtime.services.agent_service if self.runtime.services is not None else None
        reference = protocol.strip().lower() == REFERENCE
        data = {} if reference else read_protocol(protocol)
        chosen, origin = self._service_url(url, in_use)
        if reference:
            if chosen is None:
                raise StampedeError(
                    "No agent service in use: call Use Agent Service first (usually in the suite setup), or give url."
                )
            spec = reference_service(chosen)
        else:
            spec = WebSocketProtocol.from_dict(data, url=chosen)
        own = data.get("url")
        tool = WebSocketAgentTool(
            spec,
            tokens=_tokens(spec, in_use, resuming=drop_after_events is not None),
            name=name,
            connect_timeout=positive_seconds(connect_timeout, what="connect_timeout"),
            answer_timeout=positive_seconds(answer_timeout, what="answer_timeout"),
            run_timeout=positive_seconds(run_timeout, what="run_timeout"),
            context_bytes=_context_bytes(context_size),
            connect_early=connect_early,
            drop_after_events=drop_after_events,
            runs_at_once=runs_at_once,
        )
        self.runtime.tools[name] = tool
        if chosen is None:
            origin = "the protocol's own url"
        elif isinstance(own, str) and own != chosen:
            origin += f"; the protocol's own url {display_url(own)} is not used"
        self.log(f"WebSocket agent tool {name!r} talks to {display_url(spec.url)} ({origin}).")
        rows = [*tool.describe().items(), ("launch with operation_timeout ≥", format_duration(tool.operation_bound))]
        self.log_html(table(["", ""], rows, f"WebSocket agent tool {name}"))

    def _service_url(self, url: str | None, in_use: AgentServiceTarget | None) -> tuple[str | None, str]:
        """The URL of the service under test and where it came from (None: only the protocol may name one)."""
        if url:
            return url, "given as url"
        if in_use is not None and in_use.url:
            return in_use.url, "the agent service in use, see Use Agent Service"
        configured = resolve_agent_service_url(self.variable("AGENT_SERVICE_URL"))
        if configured is not None:
            return configured, f"${{AGENT_SERVICE_URL}} or {AGENT_SERVICE_URL_ENV}"
        return None, ""


def _tokens(protocol: WebSocketProtocol, in_use: AgentServiceTarget | None, *, resuming: bool) -> TokenSource | None:
    """Each user's token as the protocol's token spec says; ConfigurationError now if none can be signed."""
    if not protocol.needs_token(resuming=resuming):
        return None
    if in_use is None:
        raise ConfigurationError(
            f"The WebSocket protocol for {display_url(protocol.url)} sends a token (auth {protocol.auth.value}), "
            "but no agent service is in use to sign it for: call Use Agent Service first (with your service's URL, "
            "and its secret in STAMPEDE_AGENT_JWT_SECRET or ${AGENT_SERVICE_JWT_SECRET})."
        )
    return in_use.token_issuer(protocol.token)


def _context_bytes(size: str) -> int:
    value = _size(size, "context_size")
    if value != int(value):
        raise ConfigurationError(f"context_size must be a whole number of bytes, got {size!r}.")
    return int(value)


def agent_credits_verdict(runtime: Runtime, tool: WebSocketAgentTool) -> Verdict:
    """Every user's credits on the reference agent service are its credits at session start minus its runs' cost.

    Reads the service's ``agent_credits`` table now; the starting credits are
    those the service reported when each user's session began, and each user's
    completed runs are counted from what that user received.
    """
    service = runtime.agent_service
    settings = service.settings
    if settings is None:
        raise ConfigurationError(
            f"Agent credits can be checked only on the bundled reference service; {service.display_url} is your "
            "own, whose credit store Stampede does not know."
        )
    rows = runtime.run(runtime.postgres.fetch("SELECT user_id, balance FROM agent_credits"))
    runs = completed_runs(tool.messages, tool.protocol.done_events)
    starting = starting_credits(tool.messages, tool.protocol.ready_event or "session_started")
    return check_agent_credits(
        {row["user_id"]: int(row["balance"]) for row in rows},
        runs,
        starting=starting,
        cost=settings["run_cost"],
        left_out=tool.messages.left_out,
    )


class WebSocketCheckKeywords(LibraryComponent):
    """Judges what the users of a WebSocket agent service received (LockConflicts)."""

    def _launch(self, launch: LaunchRecord | int | None) -> tuple[LaunchRecord, WebSocketAgentTool]:
        return self.launch_of(launch, WebSocketAgentTool, "a WebSocket agent tool", "Define WebSocket Agent Tool")

    @keyword(tags=["checks", "websocket", "isolation"])
    def no_events_should_reach_another_user(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when a message on one user's connection carried another user's id or another agent's marker.

        Every agent sends a marker of its own; a marker or user id that turns up
        on the wrong connection is a cross-user leak. Lists the leaked messages.

        | No Events Should Reach Another User |
        """
        _, tool = self._launch(launch)
        self.judge(
            check_no_contamination(tool.messages, marker_owners=tool.marker_owners, left_out=tool.messages.left_out)
        )

    @keyword(tags=["checks", "websocket", "ordering"])
    def events_should_arrive_in_order_without_gaps(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when a connection's sequence numbers skip or go back, or a run's events break its lifecycle.

        Holds across a dropped and resumed connection: the resumed stream must
        continue where the old one stopped. The lifecycle is the protocol's
        ``run_events``, an ordered pattern in which a type may appear twice.
        Only each user's own events are judged: a message carrying another
        user's id or marker is `No Events Should Reach Another User`'s finding,
        left out here (with the gap or the run it cut short on its owner's
        connection) and counted in the message.

        | Events Should Arrive In Order Without Gaps |
        """
        _, tool = self._launch(launch)
        self.judge(
            check_event_ordering(
                tool.messages,
                lifecycle=tool.protocol.run_events,
                failures=tool.protocol.failed_events,
                left_out=tool.messages.left_out,
            )
        )

    @keyword(tags=["checks", "websocket"])
    def every_agent_should_be_answered(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when a user could not connect, was refused, or a request got no answer within the answer timeout.

        A refusal (HTTP 401/403 on the handshake, a close 4401, 4403 or 1008, an
        error event about the credentials) is never an answer: the message lists
        the likely causes (the secret, the token's claims, the auth mode, where the
        token goes). Less strict than `All Operations Should Succeed`: a frame
        that is not JSON, a connection closed mid-message or a protocol field path
        that matches nothing is an answer of sorts, but no completed run.

        | Every Agent Should Be Answered |
        """
        record, _ = self._launch(launch)
        self.judge(check_answered(record.result.history))

    @keyword(tags=["checks", "websocket"])
    def run_ids_should_be_unique(self, launch: LaunchRecord | int | None = None) -> None:
        """Fails when the service gave the same run id (or session id) to two runs (or sessions).

        | Run Ids Should Be Unique |
        """
        _, tool = self._launch(launch)
        self.judge(check_unique_ids(tool.messages, left_out=tool.messages.left_out))

    @keyword(tags=["websocket", "metrics"])
    def log_websocket_latencies(self, launch: LaunchRecord | int | None = None) -> dict[str, float]:
        """Logs connect, startup and run latencies (p50, p95, p99, max) and returns them by metric name, in seconds.

        | ${latencies}= | Log WebSocket Latencies |
        | Log | startup p95: ${latencies}[first_event_p95] s |
        """
        record, _ = self._launch(launch)
        timings = record.summary.timings
        rows, figures = [], {}
        for phase, meaning in _PHASES:
            summary = timings.get(phase)
            if summary is None or not summary.count:
                continue
            figures.update(summary.as_metrics(f"{phase}_"))
            rows.append(
                [meaning, summary.count, *(_shown(summary, pct) for pct in (50, 95, 99)), format_duration(summary.max)]
            )
        self.log_html(
            table(
                ["phase", "count", "p50", "p95", "p99", "max"], rows, f"WebSocket latencies of launch {record.number}"
            )
        )
        return figures


def _shown(summary: LatencySummary, pct: float) -> str:
    return format_duration(summary.percentiles[pct])
