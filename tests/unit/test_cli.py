import subprocess
import sys

import pytest

from mimamori.cli import build_parser, main


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os
    return subprocess.run([sys.executable, "-m", "mimamori.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_help_lists_the_commands() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    assert "usage: mimamori" in done.stdout


def test_the_command_line_starts_without_the_report_charts() -> None:
    """matplotlib and numpy (0.4-0.6 s of CPU to import) come with a command that draws a report
    (report, the worker), not with every command: the parser imports every command's module."""
    done = subprocess.run([sys.executable, "-c", "import sys; from mimamori.cli import build_parser; build_parser(); "
                           "print(sorted(m for m in ('matplotlib', 'numpy') if m in sys.modules))"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_command_answers_help() -> None:
    parser = build_parser()
    names = [a for a in parser._subparsers._group_actions[0].choices]  # type: ignore[union-attr]
    for name in names:
        with pytest.raises(SystemExit) as exited:
            main([name, "--help"])
        assert exited.value.code == 0


def test_unknown_command_is_one_line_and_status_2() -> None:
    done = run_cli("no-such-command")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1


def test_bad_configuration_exits_2_naming_the_variable() -> None:
    done = run_cli("worker", env={"MIMAMORI_MAIL_GROUP_WAIT": "abc"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MIMAMORI_MAIL_GROUP_WAIT" in lines[0]
