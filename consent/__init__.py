"""Consent and delegation domain and the tamper-evident consent ledger (no Flask here)."""
