"""Signing-key lifecycle: generation, encryption at rest, rotation, JWKS, signing and verifying."""
