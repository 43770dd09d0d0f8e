"""One form for an email address, wherever auth meets one (register, login, lookups).

email-validator's normalisation (Unicode NFC in the local part, IDNA/UTS #46 for the domain,
so a full-width or upper-case domain becomes its ASCII form), then lower case: an address
registers and logs in the same way however the client composed its characters. An address
email-validator refuses (only login sees those: registration validates first) is still
NFC-normalised and lower-cased, so that it simply matches no account.
"""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email


def normalize_email(value: str) -> str:
    value = value.strip()
    try:
        normalized = validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        normalized = unicodedata.normalize("NFC", value)
    return normalized.lower()
