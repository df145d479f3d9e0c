"""Payments as the ASE executes them: no HTTP here (the operations live in
`opase.outgoing_payments`). `outgoing`: local outgoing payments on the ledger."""
