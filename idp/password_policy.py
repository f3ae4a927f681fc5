"""What makes an acceptable new password (sign-in.md "Accounts"): at least 12 characters,
not one of the 30,000 most common passwords (zxcvbn's list), not the email address."""

from __future__ import annotations

from functools import cache

from zxcvbn.frequency_lists import FREQUENCY_LISTS

MIN_LENGTH = 12
MAX_LENGTH = 256


@cache
def _common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, *, email: str = "") -> str | None:
    """A message for the citizen, or None when the password is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Your password must be at least {MIN_LENGTH} characters long"
    if len(password) > MAX_LENGTH:
        return f"Your password must be {MAX_LENGTH} characters or fewer"
    folded = password.lower()
    if folded in _common_passwords() or folded.strip() in _common_passwords():
        return "This password is too common. Choose a password that is harder to guess"
    if email and email.strip().lower() in folded:
        return "Your password must not contain your email address"
    if len(set(password)) < 4:
        return "Your password must not repeat the same few characters"
    return None
