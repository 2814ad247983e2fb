"""Weak secrets are refused at start-up: the admin token, the admin password and the media secret.

A secret must have at least MIN_LENGTH characters and an estimated MIN_BITS bits of entropy. The
estimate is the cheapest way to spell the secret out of pieces an attacker guesses first: a common
word (``secret``, ``admin``, also in upper case or l33t) costs about 8 bits, a run of one character
or an ascending/descending sequence (``aaaa``, ``1234``, ``qwerty`` is a word) a few bits, any other
character log2 of the alphabet the secret draws from (lower case, upper case, digits, symbols).
The media secret matters most: anyone holding one signed URL can test guesses of it offline.
"""

from __future__ import annotations

import logging
import math
from typing import Any

log = logging.getLogger(__name__)

MIN_LENGTH = 16
MIN_BITS = 64.0
SUGGESTION = "python3 -c 'import secrets; print(\"tams_\" + secrets.token_urlsafe(32))'"

# Words tried first by anyone guessing a secret (lower case, after undoing l33t; 3 letters or more).
_WORDS = """
    password passwd pass secret secrets admin administrator root token key keys test testing tests demo
    example sample default changeme change letmein welcome hello login logon user guest master private
    public access qwerty qwertz azerty asdf asdfgh zxcv zxcvbn iloveyou love trustno dragon monkey shadow
    sunshine princess football baseball soccer superman batman starwars whatever freedom mustang abc
    abcd xyz tams media server service api auth bearer basic prod production dev develop development
    staging stage local localhost temp tmp new old our the and for you bbc cloud aws vast store data
    database storage upload download video audio flow flows source sources segment segments config
    setting settings system sys web www http https docker kube kubernetes first last one two three
    four five six seven eight nine ten zero alpha beta gamma delta omega summer winter spring autumn
    monday friday january december company office team secure security safe unsafe insecure dummy fake
    foo bar baz qux hunter shibboleth open sesame opensesame abc123 pa55word
"""
COMMON_WORDS = frozenset(_WORDS.split())
_WORD_BITS = math.log2(len(COMMON_WORDS))
_LEET = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_LONGEST_WORD = max(map(len, COMMON_WORDS))


class WeakSecretError(ValueError):
    """A configured secret is too weak to run with; the message names the settings, never the values."""


def _alphabet_bits(secret: str) -> float:
    size = 0
    size += 26 if any(c.islower() for c in secret) else 0
    size += 26 if any(c.isupper() for c in secret) else 0
    size += 10 if any(c.isdigit() for c in secret) else 0
    size += 33 if any(c.isascii() and not c.isalnum() for c in secret) else 0
    size += 100 if any(not c.isascii() and not c.isalnum() for c in secret) else 0
    size += 100 if any(not c.isascii() and c.isalnum() for c in secret) else 0
    return math.log2(max(size, 2))


def estimated_bits(secret: str) -> float:
    """Bits of the cheapest spelling of ``secret`` out of common words, runs and single characters."""
    char_bits = _alphabet_bits(secret)
    plain = secret.lower().translate(_LEET)
    n = len(secret)
    best = [0.0] + [math.inf] * n  # best[i]: cheapest spelling of secret[:i]
    # A run: one character repeated, or each the one after (or before) the last (abcd, 4321).
    # run_end[step][i]: where the longest such run from i ends.
    run_end = {}
    for step in (0, 1, -1):
        ends = [n] * n
        for i in range(n - 2, -1, -1):
            ends[i] = ends[i + 1] if ord(secret[i + 1]) - ord(secret[i]) == step else i + 1
        run_end[step] = ends
    for i in range(n):
        if best[i] == math.inf:
            continue
        best[i + 1] = min(best[i + 1], best[i] + char_bits)
        for j in range(i + 3, min(n, i + _LONGEST_WORD) + 1):
            if plain[i:j] in COMMON_WORDS:
                capitals = 1.0 if secret[i:j] != secret[i:j].lower() else 0.0
                best[j] = min(best[j], best[i] + _WORD_BITS + capitals)
        for step, ends in run_end.items():
            j = ends[i]
            if j - i >= 3:
                best[j] = min(best[j], best[i] + char_bits + math.log2(j - i) + (1.0 if step else 0.0))
    return best[n]


def weakness(secret: str) -> str | None:
    """Why ``secret`` is too weak, or None when it is strong enough."""
    if len(secret) < MIN_LENGTH:
        return f"it has {len(secret)} characters, at least {MIN_LENGTH} are needed"
    bits = estimated_bits(secret)
    if bits < MIN_BITS:
        return f"it is too easy to guess (about {bits:.0f} bits, at least {MIN_BITS:.0f} are needed)"
    return None


# The secrets checked: setting name -> its environment variable.
CHECKED = {
    "admin_token": "TAMS_ADMIN_TOKEN",
    "admin_password": "TAMS_ADMIN_PASSWORD",
    "media_secret": "TAMS_MEDIA_SECRET",
}


def check_settings(settings: Any) -> list[str]:
    """Refuse weak secrets (WeakSecretError naming each, never its value); return, and log, warnings
    about settings that work but are risky."""
    problems = []
    for name, variable in CHECKED.items():
        value = getattr(settings, name, None)
        if value is None or (name != "media_secret" and getattr(settings, "insecure_no_auth", False)):
            continue  # unset (a random one is made), or unused
        why = weakness(value)
        if why is not None:
            problems.append(f"{name} ({variable}): {why}")
    if problems:
        raise WeakSecretError(
            "refusing to start with weak secrets: " + "; ".join(problems) + f". Make a strong one with {SUGGESTION}"
        )
    warnings = []
    if getattr(settings, "jwt_public_key", None) or getattr(settings, "jwt_jwks", None):
        missing = [name for name in ("jwt_issuer", "jwt_audience") if not getattr(settings, name, None)]
        if missing:
            warnings.append(
                f"JWTs are accepted without checking {' or '.join(missing)}: any token the key signed, for any"
                " service, is accepted here; set " + " and ".join(missing)
            )
    for warning in warnings:
        log.warning("%s", warning)
    return warnings
