"""Column sizes, shared by the table definitions and the request validation."""

NAME_MAX_LENGTH = 100
EMAIL_MAX_LENGTH = 320  # RFC 5321's 64-octet local part, @, 255-octet domain
