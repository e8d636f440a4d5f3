"""Email validation: email-validator's verdict, reproduced in-line for the plain ASCII shape.

The rule (stated in the OpenAPI document too, see `RESERVED_DOMAINS_PATTERN`): an address is
valid when email-validator accepts its syntax (no DNS lookup), on any domain except the
reserved names that can never receive mail (.arpa, .invalid, .local, .localhost, .onion).
`.test` is accepted (RFC 6761 reserves it for testing, which is what clients do with it), as
are domains without a dot or a numeric top-level domain, which RFC 5321 allows.

Identity: the normalised form is what is stored and what the unique constraint compares, so
two addresses email-validator normalises to the same string are the same user. That form has
the domain lowercased (and IDNA-decoded), the local part NFC-normalised and kept in its case,
except role accounts (RFC 2142: info, postmaster, abuse, ...), whose local part is lowercased:
`Info@Example.com` is `info@example.com`, while `Ada@example.com` and `ada@example.com` are two
addresses.

email-validator costs about 20 µs an address, most of the cost of a POST /users beyond the
database. Nearly every real address is plain ASCII with a lowercase local part (a dot-atom,
letter-digit-hyphen domain labels); for those, its verdict and normalised form are reproduced
here exactly (a property test compares the two on generated addresses). Anything else, and
anything this code is not sure of, goes to email-validator itself: a capital letter in the
local part among them, since email-validator lowercases some local parts (its list of role
accounts is not part of its public API, so it is not copied here).
"""

from __future__ import annotations

import re
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

# email-validator's options, shared with the property test.
OPTIONS: dict[str, Any] = {
    "check_deliverability": False,  # no DNS on the request path
    "test_environment": True,  # accept .test
    "globally_deliverable": False,  # accept what RFC 5321 accepts (a@host, a@b.c1)
}
RESERVED_DOMAINS = tuple(name for name in SPECIAL_USE_DOMAIN_NAMES if name != "test")
# For the OpenAPI document: an address is refused when its domain is, or ends in, one of these
# (any letter case; email-validator lowercases the domain).
RESERVED_DOMAINS_PATTERN = (
    "[@.](?:"
    + "|".join(
        "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in name)
        for name in RESERVED_DOMAINS
    )
    + ")$"
)

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
# Lowercase letter-digit-hyphen labels, at least two, the last of letters only (2-63 of them).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+[a-z]{{2,63}}")
# The domain refused is a reserved name itself or ends in "." + one.
_RESERVED_ENDINGS = tuple("." + name for name in RESERVED_DOMAINS)


def plain_ascii_email(value: str) -> str | None:
    """The normalised address when it is plainly valid ASCII; None when unsure."""
    local, at, domain = value.rpartition("@")
    if not at or len(value) > 254 or len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        return None
    if local != local.lower():
        return None  # perhaps a role account, which email-validator lowercases
    domain = domain.lower()  # email-validator lowercases the domain
    # "--" could be Punycode or an IDNA-invalid label: email-validator's business.
    if len(domain) > 253 or "--" in domain or not _DOMAIN.fullmatch(domain):
        return None
    if ("." + domain).endswith(_RESERVED_ENDINGS):
        return None
    return f"{local}@{domain}"


def normalise_email(value: str) -> str:
    """The normalised address, or ValueError saying why it is not one."""
    plain = plain_ascii_email(value)
    if plain is not None:
        return plain
    try:
        return validate_email(value, **OPTIONS).normalized
    except EmailNotValidError as error:
        raise ValueError(f"value is not a valid email address: {error}") from None
