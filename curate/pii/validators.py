"""Checksums that custom regex recognizers can require (`validate:` in rules/pii)."""

from __future__ import annotations

from collections.abc import Callable


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def luhn(value: str) -> bool:
    digits = _digits(value)
    if len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card(value: str) -> bool:
    """A payment card number: 13 to 19 digits passing the Luhn check."""
    return 13 <= len(_digits(value)) <= 19 and luhn(value)


def npi(value: str) -> bool:
    """US National Provider Identifier: 10 digits, Luhn over the 80840 prefix + the number."""
    digits = _digits(value)
    return len(digits) == 10 and digits[0] in "12" and luhn("80840" + digits)


def dea(value: str) -> bool:
    """DEA registration number: 2 letters + 7 digits, the last a checksum of the first six."""
    v = value.strip().upper()
    if len(v) != 9 or not v[:2].isalpha() or not v[2:].isdigit():
        return False
    d = [int(c) for c in v[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def vn_mobile(value: str) -> bool:
    """Vietnamese mobile numbers: +84/84/0 then a 9-digit subscriber number starting 3, 5, 7, 8 or 9."""
    digits = _digits(value)
    if digits.startswith("84"):
        digits = digits[2:]
    elif digits.startswith("0"):
        digits = digits[1:]
    else:
        return False
    return len(digits) == 9 and digits[0] in "35789"


_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9))),
    **dict(zip("JKLMN", range(1, 6))),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10))),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin(value: str) -> bool:
    """A North American vehicle identification number: 17 characters (no I, O, Q), at least one
    digit and one letter, the 9th a check digit (ISO 3779 weights, X for 10)."""
    v = value.strip().upper()
    if len(v) != 17 or any(c not in _VIN_VALUES for c in v) or v.isdigit() or v.isalpha():
        return False
    total = sum(_VIN_VALUES[c] * w for c, w in zip(v, _VIN_WEIGHTS)) % 11
    return v[8] == ("X" if total == 10 else str(total))


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn,
    "card": card,
    "npi": npi,
    "dea": dea,
    "vn_mobile": vn_mobile,
    "vin": vin,
}
