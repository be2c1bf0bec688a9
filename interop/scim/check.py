"""Runs the independent SCIM compliance checker scim2-tester against a
running idplane: discovery, then create, read, query, replace, patch and
delete of every resource type the server describes. Exits non-zero if any
check fails.

    python3 interop/scim/check.py http://localhost:8080/scim/v2 TOKEN

(`interop/scim/run.sh` sets up the checker and a fresh server, and runs it.)
"""

import datetime
import sys

import scim2_tester.filling as filling
from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server


_generate = filling.generate_random_value


def _generate_with_dates(context, path, mutability=None, required=None):
    """scim2-tester 0.5 fills dateTime attributes of discovered extensions
    with a random string, which its own models then refuse; give them a date
    (idplane's lifecycle extension has startDate and endDate)."""
    binding = path.resolve()
    if binding is not None and binding.target_type in (datetime.datetime, datetime.date):
        if mutability is not None and binding.get_annotation(filling.Mutability) not in mutability:
            return None
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        # An engagement starts before it ends.
        days = 60 if "end" in str(path).lower() else 1
        return now + datetime.timedelta(days=days)
    return _generate(context, path, mutability=mutability, required=required)


def _install_date_filler() -> None:
    import importlib
    import pkgutil

    import scim2_tester.checkers as checkers

    filling.generate_random_value = _generate_with_dates
    for info in pkgutil.iter_modules(checkers.__path__):
        module = importlib.import_module(f"scim2_tester.checkers.{info.name}")
        if hasattr(module, "generate_random_value"):
            module.generate_random_value = _generate_with_dates


_install_date_filler()


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    client = SyncSCIMClient(http)
    results = check_server(client)
    failed = 0
    for r in results:
        mark = {Status.SUCCESS: "ok  ", Status.SKIPPED: "skip"}.get(r.status, "FAIL")
        if mark == "FAIL":
            failed += 1
        line = f"{mark} {r.title}"
        if r.resource_type:
            line += f" [{r.resource_type}]"
        if mark == "FAIL" and r.reason:
            line += f": {r.reason}"
        print(line)
    passed = sum(1 for r in results if r.status == Status.SUCCESS)
    print(f"\n{passed} passed, {failed} failed, {len(results) - passed - failed} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
