"""No fragment of a password, whatever characters it holds, encoded in the URL or not, reaches
any line the launcher writes: URLs are redacted by parsing, and every text a driver built from
a (mis)read URL is scrubbed of any three characters of the password."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest
from alembic_prestart.db.session import classify_connect_error
from alembic_prestart.db.url import FRAGMENT_CHARACTERS, DatabaseURL, DatabaseURLError
from alembic_prestart.observe import logs
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.processes import Launcher, launcher_env
from tests.support.urls import parse_database_url, with_database

HOSTILE = "/?#@:%& ñ"
# Letters and digits that none of the launcher's own words or the test URLs' hosts hold: a
# three-character window of the password found in the output is then a leak, not a coincidence.
PASSWORDS = st.text(
    alphabet=st.sampled_from(HOSTILE + "BCFGHJKMNPQVWXYZ2345689"), min_size=6, max_size=24
).filter(lambda password: any(character in HOSTILE for character in password))
# Every character the issue names, at once.
EVERY_HOSTILE = "Kx7/q?Z#w@v:P%j&s Ñb9"


def fragments(password: str) -> set[str]:
    size = FRAGMENT_CHARACTERS
    return {password[i : i + size] for i in range(len(password) - size + 1)}


def assert_no_fragment(text: str, password: str) -> None:
    leaked = sorted(fragment for fragment in fragments(password) if fragment in text)
    assert not leaked, f"fragments {leaked} of the password in: {text}"


def urls(password: str) -> list[str]:
    """As written by hand (unencoded) and as it should be (percent-encoded)."""
    return [
        f"postgresql://app:{password}@127.0.0.1:1/db",
        f"postgresql://app:{quote(password, safe='')}@127.0.0.1:1/db",
    ]


def connect_error(url: DatabaseURL) -> str:
    """The one line the launcher makes of asyncpg's failure to connect with this URL."""

    async def attempt() -> None:
        connection = await asyncpg.connect(url.asyncpg_dsn(), timeout=1)
        await connection.close()

    try:
        asyncio.run(attempt())
    except Exception as error:
        classified = classify_connect_error(error, url)
        return str(getattr(classified, "message", classified))
    raise AssertionError("connected to a port nothing listens on")


@settings(max_examples=60, deadline=None)
@given(PASSWORDS)
@example(EVERY_HOSTILE)
@example("Kx7@Lm8:Np9")  # int() misread the port: "invalid literal for int() ... 'Kx7@Lm8'"
def test_driver_errors_hold_no_fragment_of_the_password(password: str) -> None:
    """asyncpg's own error, for the URL encoded or not, as the launcher reports and logs it."""
    for raw in urls(password):
        try:
            url = parse_database_url(raw)
        except DatabaseURLError as refused:  # an unencoded @ is refused before any driver
            message = str(refused)
        else:
            message = connect_error(url)
        assert_no_fragment(logs.redact(message), password)


@pytest.mark.slow
@pytest.mark.parametrize("encoded", [False, True], ids=["as-written", "percent-encoded"])
def test_no_fragment_in_any_output_of_a_failing_launcher(
    encoded: bool, postgres_admin: DatabaseURL, tmp_path: Path
) -> None:
    """A real launcher, each failure mode (unreachable, missing database), every output line."""
    password = quote(EVERY_HOSTILE, safe="") if encoded else EVERY_HOSTILE
    missing = with_database(postgres_admin, "no_such_database_for_fragments")
    host = missing.url.partition("://")[2].partition("/")[0].rpartition("@")[2]
    cases = {
        "unreachable": f"postgresql://app:{password}@127.0.0.1:1/db",
        "missing database": f"postgresql://postgres:{password}@{host}/no_such_database_here",
    }
    for name, raw in cases.items():
        env = launcher_env(None, DATABASE_URL=raw, DB_WAIT_TIMEOUT="0.5")
        for command in (["migrate"], ["check"], ["status"]):
            run = Launcher(command, env=env, log_path=tmp_path / f"{name}-{command[0]}.out")
            assert run.wait() in (69, 78), run.output
            assert_no_fragment(run.output, EVERY_HOSTILE)
