"""Shared CLI helpers: settings with command-line overrides, a console, errors for people.

Every command fails the same way: one line on stderr, ``error: what and why; what to do:
the fix``, and an exit code from :class:`ExitCode` (README.md, "Exit codes"). Expected
conditions (a server down, missing data, bad arguments) never print a traceback: the
``streamer`` group (:class:`StreamerGroup`) turns them into that line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from enum import IntEnum
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
from rich.console import Console
from rich.text import Text

from streamer.settings import Settings, get_settings

T = TypeVar("T")
# Piped output (the main job's log, CI) would otherwise wrap tables at 80 columns.
console = Console(width=None if Console().is_terminal else 120)
# Errors: stderr, never wrapped (one line, whatever the width), no markup in the message.
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


class ExitCode(IntEnum):
    """The exit codes of every ``streamer`` command (README.md, "Exit codes")."""

    OK = 0
    FAILED = 1  # the command ran and failed: a build, a missed evaluation target, a worker
    USAGE = 2  # bad arguments: an unknown option, a bad value, a file that is not there
    DATA = 65  # input data is malformed (EX_DATAERR)
    NOT_FOUND = 66  # what the command needs is not there: labelled data, a topic (EX_NOINPUT)
    UNAVAILABLE = 69  # a server did not answer: Kafka or Redis down or elsewhere (EX_UNAVAILABLE)
    NEEDS_OPERATOR = 78  # refused: credentials, TLS, an unsafe configuration (EX_CONFIG)
    INTERRUPTED = 130  # Ctrl-C


def settings_with(**overrides: Any) -> Settings:
    base = get_settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    return base.replace(**updates) if updates else base


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; a server that is down or refuses us ends the command with one line."""
    # aiokafka logs every failed request to a stalled broker at ERROR while it retries
    # it; the command's own result, or its one-line error, says what matters to a person.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(coro)
    except Exception as exc:
        known = expected_error(exc)
        if known is None:
            raise
        fail(*known)


def fail(message: str, hint: str | None = None, code: int = ExitCode.FAILED, *,
         detail: str | None = None) -> NoReturn:
    """Print ``error: message; what to do: hint`` as one line on stderr and exit ``code``.

    ``detail`` (a server's log tail) follows that line, indented, for the curious."""
    line = Text()
    line.append("error: ", style="bold red")
    text = one_line(message)
    line.append(text.removesuffix(".") if hint else text)
    if hint:
        line.append("; what to do: ", style="yellow")
        line.append(one_line(hint))
    err_console.print(line)
    if detail and detail.strip():
        err_console.print(Text("\n".join(f"  {ln}" for ln in detail.strip().splitlines()),
                               style="dim"))
    raise click.exceptions.Exit(int(code))


def one_line(text: str) -> str:
    """``text`` with its line breaks folded into '; ' (details stay, on the one line)."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def safe_url(url: str) -> str:
    """``url`` without a password (``redis://user:secret@host`` -> ``redis://user:***@host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def expected_error(exc: BaseException) -> tuple[str, str | None, ExitCode] | None:
    """``(message, what to do, exit code)`` for a condition a person can fix (a server
    down or refusing us, missing data); None for anything else (a bug: let it show)."""
    # Imported here: `streamer --help` stays fast, and only a failure pays for them.
    from aiokafka.errors import KafkaConnectionError
    from pydantic import ValidationError
    from redis.exceptions import AuthenticationError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from streamer.aggregate import AggregateUnavailable
    from streamer.kafka.security import KafkaSecurityError
    from streamer.produce.sender import ProduceGaveUp
    from streamer.training.data import DataError, DataMissing

    if isinstance(exc, ValidationError):
        problem = _invalid_setting(exc)  # None: not a setting's (a bug: let it show)
        return None if problem is None else (
            problem, "fix the value (`streamer config` lists every setting)",
            ExitCode.NEEDS_OPERATOR)
    settings = get_settings()  # valid: the command read them before it failed
    kafka_fix = "start it (`streamer stack up`) or set KAFKA_BOOTSTRAP to where it listens"
    redis_fix = "start it (`streamer stack up`) or set REDIS_URL to where it listens"
    redis_at = f"Redis at {safe_url(settings.redis.url)}"
    if isinstance(exc, KafkaSecurityError):
        if exc.transient:
            return str(exc), kafka_fix, ExitCode.UNAVAILABLE
        return str(exc), None, ExitCode.NEEDS_OPERATOR
    if isinstance(exc, KafkaConnectionError):
        return (f"Kafka at {settings.kafka.bootstrap} did not answer ({exc})", kafka_fix,
                ExitCode.UNAVAILABLE)
    if isinstance(exc, ProduceGaveUp):
        return str(exc), None, ExitCode.UNAVAILABLE
    if isinstance(exc, AuthenticationError):
        return (f"{redis_at} refused the credentials ({exc})",
                "check STREAMER_REDIS_USERNAME and STREAMER_REDIS_PASSWORD(_FILE)",
                ExitCode.NEEDS_OPERATOR)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return f"{redis_at} did not answer ({_why(exc)})", redis_fix, ExitCode.UNAVAILABLE
    if isinstance(exc, AggregateUnavailable):
        if exc.transient:
            return str(exc), redis_fix, ExitCode.UNAVAILABLE
        return str(exc), None, ExitCode.NEEDS_OPERATOR
    if isinstance(exc, OSError) and exc.filename is not None:  # a path given or configured
        return (f"{exc.filename}: {exc.strerror or exc}", "check the path and its permissions",
                ExitCode.FAILED)
    if isinstance(exc, DataMissing):
        return str(exc), None, ExitCode.NOT_FOUND
    if isinstance(exc, DataError):
        return str(exc), None, ExitCode.DATA
    return None


def _invalid_setting(exc: Any) -> str | None:
    """A settings section's ValidationError, naming each variable (``STREAMER_X='v': why``;
    a secret's value is not shown); None when ``exc`` is not about a settings section."""
    from pydantic_settings import BaseSettings

    import streamer.settings as settings_module

    section = getattr(settings_module, str(exc.title), None)
    if not (isinstance(section, type) and issubclass(section, BaseSettings)):
        return None
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        info = section.model_fields.get(field)
        # The section's own naming of its variables (aliases included), as `streamer config`.
        name = (" / ".join(settings_module._env_names(section, field, info)) if info
                else field or section.__name__)
        value = error.get("input")
        secret = any(word in name.lower() for word in ("password", "secret", "token"))
        shown = "" if secret or isinstance(value, dict) else f"={value!r}"
        problems.append(f"{name}{shown}: {error['msg']}")
    return "invalid setting " + "; ".join(problems)


def _why(exc: BaseException) -> str:
    """A connection failure in a few words: 'connection refused', 'timed out', or its text."""
    causes = [exc, exc.__cause__, exc.__context__]
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "Error 111 " in str(exc):
        return "connection refused"
    if any(isinstance(c, TimeoutError) for c in causes) or "Timeout" in type(exc).__name__:
        return "timed out"
    return str(exc).rstrip(".") or type(exc).__name__


class StreamerGroup(click.Group):
    """The ``streamer`` group: whatever a command lets escape that a person can fix (bad
    arguments, a server down, missing data) ends as one line and an :class:`ExitCode`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.UsageError as exc:  # BadParameter, NoSuchOption, a missing argument
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            fail(exc.format_message(), f"see `{where} --help`", ExitCode.USAGE)
        except click.ClickException as exc:
            fail(exc.format_message(), None, exc.exit_code)
        except (KeyboardInterrupt, click.Abort):
            err_console.print("interrupted")
            raise click.exceptions.Exit(ExitCode.INTERRUPTED) from None
        except Exception as exc:
            known = expected_error(exc)
            if known is None:
                raise
            fail(*known)


def number_list(value: str, kind: Callable[[str], T], option: str) -> list[T]:
    """``"1,8,32"`` -> ``[1, 8, 32]``; a clear error naming ``option`` otherwise."""
    try:
        return [kind(x) for x in value.split(",") if x.strip()]
    except ValueError:
        fail(f"{option} {value!r}: give numbers separated by commas", code=ExitCode.USAGE)
