"""What the guard in the Alembic child says, and the launcher reads in the child's output.

Plain text in Alembic's log lines and FAILED line, so any env.py logging set-up carries it.
Standard library only: the launcher imports this without the analysis (pglast).
"""

# Logged once by the env.py lock helper when it installs the guard, before any revision runs.
GUARD_INSTALLED = "migration guard installed"
# The start of the FAILED line of a statement refused under --lint strict (exit 5).
REFUSED = "unsafe migration refused (--lint strict)"
# The start of each finding logged under --lint warn.
FINDING = "unsafe migration"
