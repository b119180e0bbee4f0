"""docs/runbook.md: every section an alert can name exists, and every command in it is real.

The fenced shell commands are parsed; for the ``lantian``, ``lantian-agent``, ``airflow`` and
``python -m lantian.*`` ones, ``<command> --help`` must exit 0 and list every option the runbook
uses, so that a renamed or invented flag fails here rather than at 3 a.m.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lantian.notify import RUNBOOK_SECTIONS

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "runbook.md"
BIN = REPO / ".venv" / "bin"
FENCE = re.compile(r"^[ \t]*```(bash|sh|shell)[ \t]*\n(.*?)^[ \t]*```", re.M | re.S)
TESTED = ("lantian", "lantian-agent", "airflow")


def runbook_text() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


def shell_commands(text: str) -> list[list[str]]:
    """Each command of the fenced shell blocks, as tokens, without ``sudo [-u user]``."""
    commands = []
    for match in FENCE.finditer(text):
        joined = re.sub(r"\\\n\s*", " ", match.group(2))
        for line in joined.splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens[:1] == ["sudo"]:
                tokens = tokens[3:] if tokens[1:2] == ["-u"] else tokens[1:]
            if tokens:
                commands.append(tokens)
    return commands


def command_path(tokens: list[str]) -> list[str]:
    """The words before the first option: program, subcommands, positionals."""
    path = []
    for token in tokens:
        if token.startswith("-"):
            break
        path.append(token)
    return path


def options(tokens: list[str]) -> list[str]:
    return [t.split("=", 1)[0] for t in tokens if t.startswith("-") and t != "-"]


def has_option(help_text: str, option: str) -> bool:
    """``option`` as a whole word of the help (``--reprocess`` is not ``--reprocess-behavior``)."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


def runbook_commands(kind: str) -> list[list[str]]:
    """The runbook's commands of one program (``python``: ``.venv/bin/python -m …``)."""
    if kind == "python":
        return [t for t in shell_commands(runbook_text()) if t[:2] == [".venv/bin/python", "-m"]]
    return [t for t in shell_commands(runbook_text()) if t[0] == kind]


def test_the_runbook_has_every_section_an_alert_can_name():
    text = runbook_text()
    for anchor, title in RUNBOOK_SECTIONS.items():
        match = re.search(rf'<a id="{anchor}"></a>\n## (.+)\n', text)
        assert match, f"docs/runbook.md has no section #{anchor}"
        assert match.group(1) == title
    ids = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', text))
    links = set(re.findall(r"\]\(#([a-z0-9-]+)\)", text))
    assert links <= ids, f"links to missing sections: {links - ids}"
    assert ids == set(RUNBOOK_SECTIONS)


def test_the_runbook_names_the_required_incidents_with_commands():
    commands = [" ".join(t) for t in shell_commands(runbook_text())]
    for needle in (
        "lantian ingest devices rotate",
        "lantian-agent enroll",
        "lantian report --month",
        "airflow backfill create --dag-id lantian_daily",
        "lantian-agent status",
        "lantian ingest landing verify",
    ):
        assert any(c.startswith(needle) for c in commands), needle


def test_backfill_dates_carry_the_beijing_offset():
    """Airflow reads a date without an offset as UTC: lantian_daily's run for a Beijing day
    starts at 00:00+08:00, so a bare date would pick the next day's run."""
    backfills = [t for t in runbook_commands("airflow") if t[1:3] == ["backfill", "create"]]
    assert backfills
    for tokens in backfills:
        for flag in ("--from-date", "--to-date"):
            value = tokens[tokens.index(flag) + 1]
            assert value.endswith("T00:00:00+08:00"), f"{flag} {value}"


@pytest.mark.parametrize("program", ["lantian", "lantian-agent"])
def test_lantian_commands_exist_with_their_options(program):
    commands = runbook_commands(program)
    assert commands
    seen: dict[tuple[str, ...], str] = {}
    for tokens in commands:
        path = tuple(command_path(tokens))
        if path not in seen:
            proc = subprocess.run(
                [str(BIN / program), *path[1:], "--help"],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=REPO,
            )
            assert proc.returncode == 0, f"{' '.join(path)} --help: {proc.stderr}"
            seen[path] = proc.stdout
        for option in options(tokens):
            assert has_option(seen[path], option), f"{' '.join(path)} has no option {option}"


def test_python_modules_exist_with_their_options():
    commands = runbook_commands("python")
    modules = {t[2] for t in commands}
    assert modules == {"lantian.watch", "lantian.notify"}
    helps = {}
    for module in modules:
        proc = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr
        helps[module] = proc.stdout
    for tokens in commands:
        text = helps[tokens[2]]
        for word in command_path(tokens[3:]):  # a subcommand such as ``show`` or ``test``
            assert re.search(rf"[{{,]{word}[}},]", text), f"python -m {tokens[2]} has no {word}"
        for option in options(tokens[3:]):
            assert has_option(text, option), f"python -m {tokens[2]} has no option {option}"


AIRFLOW_HELP = """
import contextlib, io, json, sys
from airflow.cli.cli_parser import get_parser

out = {}
for argv in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        try:
            get_parser().parse_args(argv + ["--help"])
            code = None
        except SystemExit as exc:
            code = exc.code
    out[" ".join(argv)] = [code, buf.getvalue()]
print(json.dumps(out))
"""


def test_airflow_commands_exist_with_their_options():
    """Through the installed Airflow's own CLI parser (one process: each ``airflow`` start
    costs seconds); ``airflow backfill create --help`` also through the real executable."""
    commands = runbook_commands("airflow")
    paths = sorted({tuple(command_path(t)[1:]) for t in commands})
    proc = subprocess.run(
        [sys.executable, "-c", AIRFLOW_HELP, json.dumps([list(p) for p in paths])],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    helps = json.loads(proc.stdout)
    for tokens in commands:
        key = " ".join(command_path(tokens)[1:])
        code, text = helps[key]
        assert code == 0, f"airflow {key} --help exited {code}"
        for option in options(tokens):
            assert has_option(text, option), f"airflow {key} has no option {option}"

    real = subprocess.run(
        [str(BIN / "airflow"), "backfill", "create", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert real.returncode == 0 and "--reprocess-behavior" in real.stdout


def test_parser_sees_continuations_and_sudo():
    text = "```bash\nsudo -u lantian-agent lantian-agent enroll --config a \\\n    --device X --code Y  # c\n```\n"
    assert shell_commands(text) == [
        ["lantian-agent", "enroll", "--config", "a", "--device", "X", "--code", "Y"]
    ]
