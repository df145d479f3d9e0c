"""schemathesis hooks (SCHEMATHESIS_HOOKS=tests.conformance.hooks): strategies for the
string formats opase's specs use beyond JSON Schema's own, so generated "valid" data is."""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format("uint64", st.integers(0, 2**64 - 1).map(str))
schemathesis.openapi.format("ledger-amount", st.integers(1, 2**63 - 1).map(str))
