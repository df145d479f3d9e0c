"""The reliability suite (`nox -s chaos`): randomized concurrent payments against `opase serve`
while worker processes, the whole server and PostgreSQL are killed and restarted at random
moments; afterwards the ledger audit, the webhook outbox and every payment's state are checked.

`python -m tests.chaos` runs it standalone and prints the closing report; `tests/chaos/
test_chaos.py` is its bounded CI form. The engine is `tests.chaos.run`."""
