"""Property-based fuzzing of every route of the PZ Server app, generated from the app's own OpenAPI description.

The app serves no OpenAPI page (it would be a route without authentication), so the test builds the
description with ``app.openapi()``; each route describes the query strings, headers and bodies its handler reads
by hand (``pzserver_app.openapi``). For each route, Schemathesis generates requests that follow the description
and requests that break it, ``EXAMPLES_PER_ROUTE`` of them, half naming alice's real records in their path:

- with alice's API token, against a registry that holds her published catalogs, a draft, a file, columns and a
  process: no request may get a 5xx;
- without credentials: no request may get a 5xx, nor a 2xx.

Hypothesis is derandomized (the same examples on every run: CI cannot flake) and keeps no example database.
Routes that delete or stop come last, so that the others still find the records. Each run prints
"N examples, M server errors".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

EXAMPLES_PER_ROUTE = 30
"""Generated requests per route with credentials (half of them without)."""

BASE_URL = "http://testserver/pzserver"


@dataclass
class Tally:
    """What a fuzzing run sent and got."""

    examples: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    """One line per request whose answer broke the rule, with a curl command that replays it."""

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)


def operations(app) -> list:
    """Every operation of the app's OpenAPI description, the ones that delete or stop last."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    found = [result.ok() for result in schema.get_all_operations()]
    return sorted(found, key=lambda operation: (operation.method.upper() == "DELETE",
                                                operation.path.endswith("/stop/"), operation.path, operation.method))


def fuzz(server, headers: dict[str, str], known_ids: dict[str, object], examples: int, allowed) -> Tally:
    """Send ``examples`` generated requests to each route; ``allowed(status)`` says which answers are right."""
    outer_app = server.client.app
    tally = Tally()
    for operation in operations(server.app):
        names = set(re.findall(r"\{(\w+)\}", operation.path))
        real_ids = {name: known_ids[name] for name in names if name in known_ids}
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real_ids),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real_ids),
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        send_cases(strategy, examples, lambda case: _send(case, outer_app, headers, allowed, tally))
    return tally


def send_cases(strategy, examples: int, send) -> None:
    """``send`` each of ``examples`` cases of ``strategy``, derandomized."""
    given(case=strategy)(settings(
        max_examples=examples, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )(send))()


def _send(case, outer_app, headers: dict[str, str], allowed, tally: Tally) -> None:
    try:
        response = case.call(app=outer_app, base_url=BASE_URL, headers=headers)
        status, answer = response.status_code, response.content[:300]
    except Exception as error:  # the app raised: the server answers 500
        status, answer = 500, f"{type(error).__name__}: {error}"
    tally.examples += 1
    tally.statuses[status] += 1
    if not allowed(status):
        tally.failures.append(f"{case.operation.method.upper()} {case.operation.path} → {status} {answer!r}\n"
                              f"    {case.as_curl_command(headers=headers)[:2000]}")


def report(capsys, what: str, tally: Tally) -> None:
    with capsys.disabled():
        print(f"\nfuzz {what}: {tally.examples} examples, {tally.server_errors} server errors; "
              f"statuses {dict(sorted(tally.statuses.items()))}")


@pytest.fixture
def known_ids(records) -> dict[str, object]:
    """Path parameters that name alice's records."""
    return {"product": records.product["id"], "file_id": records.file_id, "content_id": records.content_id,
            "process_id": records.process["id"], "type_id": 1, "user_id": 1, "pipeline_id": 1,
            "name": "pzserver.css"}


def test_no_generated_request_with_credentials_gets_a_server_error(server, records, as_alice, known_ids, capsys):
    tally = fuzz(server, as_alice, known_ids, EXAMPLES_PER_ROUTE, allowed=lambda status: status < 500)
    report(capsys, f"with a token ({server.context.registry.engine.dialect.name})", tally)
    assert tally.examples >= 20 * len(operations(server.app))
    assert tally.failures == [], "\n".join(tally.failures)
    assert tally.statuses[200] + tally.statuses[201] + tally.statuses[204] > 0  # not everything was refused


@pytest.mark.parametrize("backend", ["sqlite"])  # nothing reaches the database without credentials
def test_no_generated_request_without_credentials_gets_through(server, records, known_ids, capsys):
    tally = fuzz(server, {}, known_ids, EXAMPLES_PER_ROUTE // 2,
                 allowed=lambda status: status < 500 and not 200 <= status < 300)
    report(capsys, "without credentials", tally)
    assert tally.examples >= 10 * len(operations(server.app))
    assert tally.failures == [], "\n".join(tally.failures)
