"""The end-to-end table (test_e2e_runtime.py) is printed after the run, from what ran: not by
a test that would depend on running after the others."""


def pytest_terminal_summary(terminalreporter):
    import sys
    mod = sys.modules.get("tests.models.test_e2e_runtime")
    table = mod.format_table() if mod is not None else ""
    if table:
        terminalreporter.write_sep("-", "end-to-end: numpy == C == arm64 / x86_64 / armv7")
        terminalreporter.write_line(table)
