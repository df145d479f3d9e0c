"""Proving who sent a request: RFC 9421 signatures, client keys, replay, access tokens."""
