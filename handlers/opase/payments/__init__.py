"""Payments as the ASE executes them: no HTTP here (the operations live in
`opase.api.resource.outgoing_payment`). `outgoing`: local outgoing payments on the ledger."""
