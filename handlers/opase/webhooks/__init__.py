"""Webhooks: events about payments and wallet addresses for the ASE's endpoint (no HTTP
server code here). `endpoint` holds the endpoint, `outbox` writes and lists events,
`delivery` sends them, `not_found` and `liquidity` decide when those events are news."""
