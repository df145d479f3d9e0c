"""Webhooks: where opase sends events about payments (no HTTP server code here); see
`service`. Sending and signing events come later; this holds the endpoint."""
