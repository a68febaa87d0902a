"""The test harness itself: a test failing on one rank must fail the run, name the test
and not hang; a run that collects no test must not pass."""

import os
import sys

from pympc.tools.launch import run_mpi

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def test_failure_on_one_rank_fails_fast_and_names_the_test():
    r = run_mpi(4, ["-m", "pytest", "--with-mpi", "-p", "no:cacheprovider", "-q",
                    os.path.join(HERE, "cases", "case_one_rank_fails.py")], timeout=120, cwd=ROOT)
    assert not r.timed_out, "the 4-rank pytest run hung:\n" + r.output[-3000:]
    assert r.returncode != 0
    assert "FAILED tests/cases/case_one_rank_fails.py::test_fails_on_rank_one_only" in r.output, r.output
    assert "[rank 1/4]" in r.output and "rank 1 disagrees" in r.output
    assert r.seconds < 60


def test_suite_counts_no_test_collected_as_failure():
    sys.path.insert(0, HERE)
    try:
        import run_suite
    finally:
        sys.path.remove(HERE)
    # collecting one small file, not the whole suite (every module's imports), reaches the
    # same verdict: a pytest run whose JUnit report counts no test
    rc = run_suite.main(["--ranks", "", "--no-docs", "-k", "no_test_has_this_name_xyz", os.path.abspath(__file__)])
    assert rc == 1


def test_junit_counts(tmp_path):
    sys.path.insert(0, HERE)
    try:
        import run_suite
    finally:
        sys.path.remove(HERE)
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite tests="5" failures="1" errors="1" skipped="1"/></testsuites>')
    assert run_suite.junit_counts(str(xml)) == {"tests": 5, "failures": 1, "errors": 1, "skipped": 1, "passed": 2}
    assert run_suite.junit_counts(str(tmp_path / "missing.xml")) is None
