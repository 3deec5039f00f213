"""The commands in README.md and docs/*.md run as written.

The convention for fenced code blocks (README.md says it too):

- ```` ```sh ````: runnable as written from the repository root, with no AWS account and
  no network. Each line (a trailing ``\\`` continues it) runs on its own in ``bash``, in
  one temporary copy of ``config/`` shared by every block, with the installed
  ``dispatcher``; it must exit 0, or N when the line ends with the comment ``# exit N``.
  ``RUN_ID`` stands for the RunId of the run in the command's ``--out`` directory (else
  the directory of its ``--ledger``). A line already run by an earlier block is skipped
  (the same demo run appears in several documents). A block whose program is not on the
  PATH (``chromium``) is skipped.
- ```` ```sh-aws ```` (needs an AWS account), ```` ```sh-net ```` (needs the network,
  e.g. a package index) and ```` ```sh-serve ```` (starts a server that runs until
  stopped, or talks to one): not run; every ``dispatcher`` command in them must parse.
- Any other shell tag (``bash``, ``shell``, ``console``) is refused, so that a block is
  never silently left out; ``text``, ``toml``, ``json``, ``python``... are not run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from dispatcher.cli import _split_dry_run, build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN, PARSE = "sh", {"sh-aws", "sh-net", "sh-serve"}
REFUSED = {"bash", "shell", "console", "zsh", "shell-session"}

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
EXIT = re.compile(r"#\s*exit (\d+)\b")
OPERATORS = {"&&", "||", "|", ";", "&"}


@dataclass(frozen=True)
class Block:
    file: str
    line: int
    tag: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"

    def lines(self) -> list[str]:
        """Logical lines: continuations (a trailing backslash, an open quote) joined,
        blank and comment lines dropped."""
        out: list[str] = []
        buffer, glue = "", ""
        for physical in self.text.splitlines():
            buffer = f"{buffer}{glue}{physical.strip() if glue == ' ' else physical}"
            if buffer.endswith("\\"):
                buffer, glue = buffer[:-1].rstrip(), " "
                continue
            try:
                shlex.split(buffer, comments=True)
            except ValueError:  # an open quote: the next line continues it
                glue = "\n"
                continue
            if buffer.strip() and not buffer.lstrip().startswith("#"):
                out.append(buffer.strip())
            buffer, glue = "", ""
        return out


def _blocks() -> list[Block]:
    out = []
    for path in DOCS:
        text = path.read_text()
        rel = path.relative_to(ROOT).as_posix()
        for m in FENCE.finditer(text):
            out.append(Block(rel, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)))
    return out


BLOCKS = _blocks()
SHELL = [b for b in BLOCKS if b.tag == RUN or b.tag in PARSE]


def _commands(line: str) -> Iterator[list[str]]:
    """The simple commands of a shell line (split at ``&&``, ``|``, ``;``, ``&``), each
    without its leading ``VAR=value`` assignments."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token in OPERATORS:
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words.pop(0)
            if words:
                yield words
            words = []
        else:
            words.append(token)


def test_the_convention_is_followed() -> None:
    refused = [f"{b.id} (```{b.tag})" for b in BLOCKS if b.tag in REFUSED]
    assert not refused, f"use sh, sh-aws, sh-net or sh-serve: {refused}"
    assert any(b.tag == RUN for b in BLOCKS if b.file == "README.md")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes."""
    heads = [
        ln.lstrip("#").strip().lower() for ln in _prose(path).splitlines() if ln.startswith("#")
    ]
    return {re.sub(r"[^\w\- ]", "", h).replace(" ", "-") for h in heads}


def _prose(path: Path) -> str:
    return FENCE.sub("", path.read_text())


def test_links_resolve() -> None:
    """Every relative link in README and docs/ names a file that exists (and a heading
    of it, when it has an anchor)."""
    broken = []
    for path in DOCS:
        for link in re.findall(r"\]\(([^)\s]+)\)", _prose(path)):
            if re.match(r"^[a-z]+:", link):
                continue
            name, _, anchor = link.partition("#")
            target = (path.parent / name) if name else path
            if not target.exists() or (
                anchor and target.suffix == ".md" and anchor not in _anchors(target)
            ):
                broken.append(f"{path.relative_to(ROOT)}: {link}")
    assert not broken


@pytest.mark.parametrize("block", SHELL, ids=[b.id for b in SHELL])
def test_dispatcher_commands_parse(block: Block) -> None:
    """Every ``dispatcher`` command in a shell block is one the CLI accepts."""
    parser = build_parser()
    for line in block.lines():
        for words in _commands(line):
            if words[0] != "dispatcher":
                continue
            try:
                parser.parse_args(_split_dry_run(words[1:]))
            except SystemExit as exc:
                if exc.code:  # --help and --version exit 0
                    pytest.fail(f"{block.id}: the CLI refuses {' '.join(words)!r}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for every block: a copy of config/, as the repository root has it."""
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "config", root / "config")
    return root


_done: set[str] = set()
RUNNABLE = [b for b in SHELL if b.tag == RUN]


def _run_id(words: list[str], cwd: Path) -> str | None:
    """The RunId of the run in ``--out`` (default ``out``), else beside ``--ledger``."""

    def flag(name: str) -> str | None:
        return words[words.index(name) + 1] if name in words[:-1] else None

    places = [cwd / (flag("--out") or "out") / "run.json"]
    if (ledger := flag("--ledger")) is not None:
        places.append((cwd / ledger).parent / "run.json")
    for place in places:
        if place.is_file():
            return str(orjson.loads(place.read_bytes())["RunId"])
    return None


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_sh_blocks_run(block: Block, workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        AWS_EC2_METADATA_DISABLED="true",  # nothing here may reach for AWS credentials
    )
    lines = block.lines()
    missing = {
        words[0]
        for line in lines
        for words in _commands(line)
        if shutil.which(words[0], path=env["PATH"]) is None
    }
    if missing:
        pytest.skip(f"not on the PATH: {', '.join(sorted(missing))}")
    for line in lines:
        key = repr(list(_commands(line)))  # the commands, without comments or spacing
        if key in _done:
            continue
        _done.add(key)
        command = line
        if "RUN_ID" in command:
            run_id = _run_id(next(_commands(line)), workdir)
            if run_id is None:
                pytest.skip(f"{line!r} needs the run of an earlier block")
            command = command.replace("RUN_ID", run_id)
        expected = int(m.group(1)) if (m := EXIT.search(line)) else 0
        done = subprocess.run(
            ["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == expected, (
            f"{block.id}: {line!r} exited {done.returncode}, expected {expected}\n"
            f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
        )
