"""pytest glue for kpitest: the `env` fixture (one kpitest.Env per test, torn down even
when the test fails), for a failed test the tails of the kpid logs in the report, and a
failure when a sanitized kpid logged a memory or UB error."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kpitest  # noqa: E402


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def env(tmp_path, request):
    e = kpitest.Env(str(tmp_path))
    try:
        yield e
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed and e.kpids:
            # Shown by pytest under "Captured stdout teardown" of the failed test.
            print(e.logs(80))
        e.close()
    # A sanitized kpid (cmake -DKPID_SANITIZE=ON) that reported memory errors fails the
    # test even when every assertion held (and even after kill -9, which skips LSan).
    reports = e.sanitizer_reports()
    if reports:
        pytest.fail("sanitizer reports in kpid logs: %r\n%s" % (reports, e.logs(80)), pytrace=False)
