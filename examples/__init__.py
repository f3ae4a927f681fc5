"""Runnable examples that use the identity provider the way an agency would (not part of the provider)."""
