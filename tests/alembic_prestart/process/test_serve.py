"""uvicorn's command line as the launcher builds it; the MAX_HEADER_BYTES setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import uvicorn
from alembic_prestart.process import header_limit, uvicorn_main
from alembic_prestart.process.serve import uvicorn_argv
from alembic_prestart.process.uvicorn_main import HEADER_LIMITED_PROTOCOL


def argv(*extra: str, **options: int) -> list[str]:
    return uvicorn_argv(
        python="/py",
        app="service.main:app",
        host="127.0.0.1",
        port=8000,
        workers=2,
        app_dir=Path("/project"),
        extra=extra,
        **options,
    )


def option(command: list[str], name: str) -> str | None:
    """The value following `name`, or None when it is not there."""
    return command[command.index(name) + 1] if name in command else None


def test_uvicorn_runs_through_the_launchers_module_with_the_header_limit() -> None:
    """By default: uvicorn's CLI via uvicorn_main, the header-limited protocol, h11 at 64 KiB."""
    command = argv()
    assert command[:4] == ["/py", "-m", "alembic_prestart.process.uvicorn_main", "service.main:app"]
    assert option(command, "--http") == HEADER_LIMITED_PROTOCOL
    assert option(command, "--h11-max-incomplete-event-size") == "65536"
    assert option(command, "--workers") == "2"


@pytest.mark.parametrize("chosen", [["--http", "h11"], ["--http=httptools"]])
def test_an_http_chosen_after_double_dash_is_kept(chosen: list[str]) -> None:
    """`-- --http ...` is the user's choice: the launcher adds no --http of its own."""
    command = argv(*chosen)
    assert HEADER_LIMITED_PROTOCOL not in command
    assert command[-len(chosen) :] == chosen
    assert option(command, "--h11-max-incomplete-event-size") == "65536"


def test_an_h11_limit_chosen_after_double_dash_is_kept() -> None:
    """`-- --h11-max-incomplete-event-size N` replaces the launcher's, not repeated."""
    command = argv("--h11-max-incomplete-event-size", "1000")
    assert command.count("--h11-max-incomplete-event-size") == 1
    assert command[-2:] == ["--h11-max-incomplete-event-size", "1000"]


def test_the_limit_reaches_h11() -> None:
    """The limit given to uvicorn_argv is h11's too."""
    assert option(argv(max_header_bytes=4096), "--h11-max-incomplete-event-size") == "4096"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, 65536), ({"MAX_HEADER_BYTES": ""}, 65536), ({"MAX_HEADER_BYTES": " 8192 "}, 8192)],
)
def test_max_header_bytes_reads_the_environment(environ: dict[str, str], expected: int) -> None:
    """Unset or empty means 64 KiB; otherwise the number of bytes given."""
    assert header_limit.max_header_bytes(environ) == expected


@pytest.mark.parametrize("raw", ["64", "0", "-5", "64k", "abc", "1e6"])
def test_max_header_bytes_refuses_what_is_not_a_byte_count(raw: str) -> None:
    """Not an integer, or under 1024 (a value in KiB by mistake): ValueError naming it."""
    with pytest.raises(ValueError, match=f"MAX_HEADER_BYTES must be .* not {raw!r}"):
        header_limit.max_header_bytes({"MAX_HEADER_BYTES": raw})


@pytest.mark.parametrize(
    ("args", "web_concurrency", "spawns"),
    [
        (["app", "--workers", "1"], "4", False),
        (["app", "--workers", "2"], None, True),
        (["app"], "3", True),
        (["app"], None, False),
        (["app", "--reload"], None, True),
    ],
)
def test_the_server_pid_is_handed_on_only_when_uvicorn_spawns(
    monkeypatch: pytest.MonkeyPatch, args: list[str], web_concurrency: str | None, spawns: bool
) -> None:
    """Workers (or --reload's server) get the server's pid; a single process never does, since
    what it spawns is the app's own."""
    if web_concurrency is None:
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    else:
        monkeypatch.setenv("WEB_CONCURRENCY", web_concurrency)
    assert uvicorn_main._spawns_servers(uvicorn.main, args) is spawns
