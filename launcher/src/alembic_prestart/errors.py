"""Exit codes and the one error type the launcher raises for expected failures."""

EXIT_OK = 0
EXIT_PENDING = 1  # `check`: migrations are pending
EXIT_USAGE = 2
EXIT_MIGRATION_FAILED = 3
EXIT_MIGRATION_TIMEOUT = 4
EXIT_UNSAFE_MIGRATION = 5  # --lint strict: a pending revision has dangerous DDL
EXIT_APP_NOT_FOUND = 66  # sysexits EX_NOINPUT: --app names a module or attribute not there
EXIT_DATABASE_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE
EXIT_INTERNAL = 70  # sysexits EX_SOFTWARE: a bug in the launcher itself
EXIT_CANNOT_LISTEN = 75  # sysexits EX_TEMPFAIL: the port is taken, a later try may succeed
EXIT_CONFIG = 78  # sysexits EX_CONFIG


def exit_code_for_signal(signum: int) -> int:
    return 128 + signum


class SupervisorError(Exception):
    """An expected failure: printed as one line, the process exits with `exit_code`."""

    def __init__(
        self, message: str, exit_code: int, *, details: tuple[str, ...] | list[str] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        # Lines printed after the message, such as the tail of a failed child's output.
        self.details = tuple(details)
