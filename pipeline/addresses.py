"""A plain e-mail address (CONTRACT.md, "Registry records"): `local@domain`, nothing else.

No display name (`Boss <attacker@evil.example>`), comment, list, quoting, space or control or
invisible format character: a parser given `Boss<attacker@evil.example>` writes to the attacker,
and `a@b.c\\u0000x` reached `a@b.cx`. The JSON Schemas carry the same pattern (tests check it)."""
from __future__ import annotations

import re
from typing import Any

# characters never in a plain address: separators and quoting of RFC 5322, white space, C0/C1
# controls, zero-width, line/paragraph separators and bidi controls, BOM
_NEVER = r'\s@<>()\[\]\\,;:"\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff'
PATTERN = rf"^[^{_NEVER}]+@(?:[^{_NEVER}.]+\.)+[^{_NEVER}.]+$"
_PLAIN = re.compile(PATTERN)
MAX_LENGTH = 254


def is_plain_address(value: Any) -> bool:
    """`local@domain` and nothing else (at most 254 characters; the domain has a dot)."""
    return isinstance(value, str) and len(value) <= MAX_LENGTH and _PLAIN.fullmatch(value) is not None
