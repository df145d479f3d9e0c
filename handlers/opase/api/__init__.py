"""The operation modules: one per spec tag, in a folder per server (as the generated route
table groups them). Each operation authorizes, converts the wire forms, calls the domain and
renders; no business rule lives here."""
