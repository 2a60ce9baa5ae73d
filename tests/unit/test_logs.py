"""MIMAMORI_LOG_FORMAT: text for people, one JSON object per line for log shippers."""
from __future__ import annotations

import io
import logging
import subprocess
import sys

import orjson
import pytest

from pipeline.config import ConfigError, load_settings
from pipeline.logs import LIBRARY_LOGGERS, LIFECYCLE_LOGGERS, configure, record_position
from tests.support.services import ROOT


@pytest.fixture
def restore_logging():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in LIBRARY_LOGGERS + LIFECYCLE_LOGGERS}
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_json_lines_carry_level_logger_message_and_the_record_position(restore_logging: None) -> None:
    out = io.StringIO()
    configure("json", "info", out)
    logging.getLogger("mimamori.detect").warning("bad record %s", "x", extra=record_position("utm.events", 3, 42))
    logging.getLogger("mimamori").info("plain\nwith a newline")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("mimamori").exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (orjson.loads(line) for line in lines)
    assert {k: first[k] for k in ("level", "logger", "message", "topic", "partition", "offset")} == {
        "level": "warning", "logger": "mimamori.detect", "message": "bad record x",
        "topic": "utm.events", "partition": 3, "offset": 42}
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert second["message"] == "plain\nwith a newline" and "topic" not in second
    assert third["level"] == "error" and "RuntimeError: boom" in third["exception"]


def test_text_lines_name_the_record_position(restore_logging: None) -> None:
    out = io.StringIO()
    configure("text", "info", out)
    logging.getLogger("mimamori").warning("late", extra=record_position("utm.events", 1, 7))
    assert out.getvalue().rstrip().endswith("WARNING mimamori: late [utm.events/1@7]")


def test_library_loggers_speak_only_from_warning_up(restore_logging: None) -> None:
    out = io.StringIO()
    configure("json", "debug", out)
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Group Coordinator Request failed")
    logging.getLogger("kafka.conn").info("connecting")
    logging.getLogger("faust.transport.consumer").info("starting")
    logging.getLogger("mimamori").debug("ours")
    logging.getLogger("aiokafka").error("a real problem")
    logging.getLogger("aiokafka.consumer.group_coordinator").error(
        "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError")
    logging.getLogger("aiokafka.cluster").error("Topic x-changelog not found in cluster metadata")
    logging.getLogger("faust.worker").info("[^Worker]: Ready")
    logging.getLogger("mimamori").error("GroupCoordinatorNotAvailableError in our own words")
    messages = [orjson.loads(line)["message"] for line in out.getvalue().splitlines()]
    assert messages == ["ours", "a real problem", "[^Worker]: Ready", "GroupCoordinatorNotAvailableError in our own words"]


def test_the_format_is_a_setting_refused_when_unknown() -> None:
    assert load_settings({}).log_format == "text"
    assert load_settings({"MIMAMORI_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError, match="MIMAMORI_LOG_FORMAT"):
        load_settings({"MIMAMORI_LOG_FORMAT": "yaml"})


def test_a_command_logs_json_lines_on_stderr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A real command line: the CLI configures logging before the command runs (the command is
    replaced by one that logs, so the test needs no Kafka)."""
    script = ("import logging, sys\n"
              "from mimamori import cli\n"
              "from mimamori.commands import simulate\n"
              "original = simulate.run\n"
              "def run(args, settings):\n"
              "    logging.getLogger('mimamori.simulate').warning('from a command', extra={'topic': 't', 'partition': 0, 'offset': 5})\n"
              "    logging.getLogger('aiokafka').info('Group Coordinator Request failed')\n"
              "    return 0\n"
              "simulate.run = run\n"
              "sys.exit(cli.main(['simulate', '--out', sys.argv[1]]))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "sim")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"MIMAMORI_LOG_FORMAT": "json", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [orjson.loads(line)["message"] for line in lines] == ["from a command"]
    assert orjson.loads(lines[0])["offset"] == 5
