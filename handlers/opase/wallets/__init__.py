"""Wallet addresses, their assets, owners and keys (no HTTP here)."""
