"""The examples in README.md and docs/*.md run, the way a reader would run them.

Each page gets a temp dir, and its blocks run there one after the other, in page order. A
```python block is a complete program run in a subprocess, unless an HTML comment right
before the block says otherwise (docs/contributing.md is the reader's guide):

- ``<!-- test: skip: REASON -->``: not run; the reason is required.
- ``<!-- test: file=NAME -->``: written to NAME in the page's dir for later blocks to import;
  ``run`` also runs it, ``pytest`` runs pytest on it (implied for a ``test_*.py`` name).
- ``<!-- test: setup`` + lines of code + ``-->``: code run first, unseen by the reader.
- ``<!-- test: console -->`` on a text block: each ``$ command`` line runs in bash in the
  page's dir, and the lines after it must be exactly what it printed.

A ```python block that starts with ``>>>`` runs as a doctest (ELLIPSIS, NORMALIZE_WHITESPACE).
Other blocks (sh, json, text) run only when marked.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK_TIMEOUT = 30.0  # seconds for one block; the examples themselves take well under 2 s
PYTHON = ("python", "py", "python3")

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
MARKER = re.compile(r"^\s*<!--\s*test:(?P<rest>.*)$")
MARKER_END = "-->"
SEPARATOR = "@@ zmqservice docs: end of command @@"
DOCTEST = """
import doctest as _doctest
import sys as _sys

_test = _doctest.DocTestParser().get_doctest({source!r}, dict(globals()), {name!r}, {name!r}, 0)
_runner = _doctest.DocTestRunner(optionflags=_doctest.ELLIPSIS | _doctest.NORMALIZE_WHITESPACE)
_runner.run(_test)
_sys.exit(1 if _runner.failures else 0)
"""


@dataclass
class Marker:
    """What a ``<!-- test: ... -->`` comment asks for."""

    skip: str | None = None
    file: str | None = None
    run: bool = False
    pytest: bool = False
    console: bool = False
    setup: str = ""


@dataclass
class Block:
    """One fenced code block of a page, with the marker before it."""

    page: str
    line: int
    lang: str
    code: str
    marker: Marker = field(default_factory=Marker)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


# -- reading pages ------------------------------------------------------------------------


def parse_marker(comment: list[str], where: str) -> Marker:
    """Read a marker comment: tokens on its first line, setup code on the lines after."""
    tokens, has_skip, reason = comment[0].partition("skip:")
    marker = Marker(skip=reason.strip() if has_skip else None)
    if has_skip and not marker.skip:
        raise ValueError(f"{where}: `test: skip:` needs a reason after the colon")
    words = tokens.replace(",", " ").split()
    for word in words:
        if word.startswith("file="):
            marker.file = word.removeprefix("file=")
            if not marker.file or marker.file.startswith("/") or ".." in Path(marker.file).parts:
                raise ValueError(f"{where}: file= needs a relative path, got {marker.file!r}")
        elif word in ("run", "pytest", "console"):
            setattr(marker, word, True)
        elif word == "skip":
            raise ValueError(f"{where}: `skip` needs a reason: `test: skip: REASON`")
        elif word != "setup":
            raise ValueError(f"{where}: unknown test marker word {word!r}")
    code = textwrap.dedent("\n".join(comment[1:])).strip()
    if "setup" in words:
        if not code:
            raise ValueError(f"{where}: `test: setup` needs lines of code before `-->`")
        marker.setup = code + "\n"
    elif code:
        raise ValueError(f"{where}: only a `test: setup` marker spans several lines")
    if marker.skip is not None and words:
        raise ValueError(f"{where}: `skip:` goes alone, with its reason")
    if (marker.run or marker.pytest) and not marker.file:
        raise ValueError(f"{where}: `run` and `pytest` need file=NAME")
    return marker


def parse(name: str, text: str) -> list[Block]:
    """Return the fenced code blocks of page `name`, each with the marker just before it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: tuple[Marker, str] | None = None
    index = 0
    while index < len(lines):
        where = f"{name}:{index + 1}"
        start, opening = MARKER.match(lines[index]), FENCE.match(lines[index])
        if start:
            if pending is not None:
                raise ValueError(f"{where}: a second test marker before the code block")
            comment = [start["rest"]]
            while MARKER_END not in comment[-1]:
                index += 1
                if index == len(lines):
                    raise ValueError(f"{where}: a test marker without `-->`")
                comment.append(lines[index])
            comment[-1] = comment[-1].split(MARKER_END)[0]
            pending = (parse_marker(comment, where), where)
        elif opening:
            first_line, indent, fence = index + 1, len(opening["indent"]), opening["fence"]
            closing = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            body = []
            index += 1
            while index < len(lines) and not closing.match(lines[index]):
                line = lines[index]
                body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
                index += 1
            code = "\n".join(body) + "\n"
            marker = pending[0] if pending else Marker()
            blocks.append(Block(name, first_line, opening["lang"], code, marker))
            pending = None
        elif lines[index].strip() and pending is not None:
            raise ValueError(f"{pending[1]}: a test marker must come right before a code block")
        index += 1
    if pending is not None:
        raise ValueError(f"{pending[1]}: a test marker must come right before a code block")
    return blocks


# -- running blocks -----------------------------------------------------------------------


@functools.cache
def app_prefixes() -> tuple[str, ...]:
    """The `<NAME>_` environment prefixes of every `App("name")` the pages declare."""
    names = set()
    for page in PAGES:
        names.update(re.findall(r"\bApp\(\s*[\"']([^\"']+)[\"']", page.read_text(encoding="utf-8")))
    return tuple(re.sub(r"\W", "_", name).upper() + "_" for name in sorted(names))


def clean_env() -> dict[str, str]:
    """This environment, less any `<NAME>_*` variable that would change an example's config."""
    prefixes = app_prefixes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    path = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    return {**env, "PATH": path, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}


def execute(command: list[str], folder: Path, where: str) -> tuple[int, str]:
    """Run `command` in `folder` with a bounded wait; return its exit code and output."""
    with subprocess.Popen(
        command,
        cwd=folder,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a group of its own: whatever it started is stopped with it
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate(timeout=10)
            pytest.fail(f"{where}: still running after {BLOCK_TIMEOUT:.0f} s\n{output}", False)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # any child the example left behind
    return proc.returncode, output


def check(command: list[str], folder: Path, block: Block) -> None:
    """Run `command` for `block`; fail with the block and its output unless it exits 0."""
    code, output = execute(command, folder, block.where)
    if code != 0:
        pytest.fail(
            f"{block.where}: exit status {code}\n{block.code}\n--- output:\n{output}", False
        )


def run_console(block: Block, folder: Path) -> None:
    """Run the `$ command` lines of a console transcript; compare what each one printed."""
    transcript: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            transcript.append((line[2:], []))
        elif transcript:
            transcript[-1][1].append(line.rstrip())
        else:
            raise ValueError(f"{block.where}: a console block starts with `$ command`")
    script = "".join(
        f"{command}\nstatus=$?; echo '{SEPARATOR}'; (exit $status)\n" for command, _ in transcript
    )
    _, output = execute(["bash", "-c", script], folder, block.where)
    printed = output.split(SEPARATOR + "\n")
    if len(printed) != len(transcript) + 1:
        pytest.fail(f"{block.where}: the transcript did not run to its end:\n{output}", False)
    for (command, expected), actual in zip(transcript, printed, strict=False):
        got = [line.rstrip() for line in actual.splitlines()]
        assert got == expected, f"{block.where}: `$ {command}` printed:\n" + "\n".join(got)


def run_block(block: Block, folder: Path) -> None:
    """Do what `block`'s marker says, in the page's dir `folder`."""
    marker, code = block.marker, block.marker.setup + block.code
    if marker.skip is not None:
        return
    if marker.console:
        run_console(block, folder)
        return
    python = block.lang in PYTHON
    if marker.file is not None:
        path = folder / marker.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")
        if python:  # every Python file a page shows compiles, even one no block imports
            try:
                compile(code, str(path), "exec")
            except SyntaxError as exc:
                pytest.fail(f"{block.where}: {marker.file} does not compile: {exc}", False)
        if marker.pytest or (python and path.name.startswith("test_")):
            pytest_run = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
            check([sys.executable, *pytest_run, marker.file], folder, block)
        if marker.run:
            check([sys.executable, marker.file], folder, block)
        return
    if not python:
        return
    if block.code.lstrip().startswith(">>>"):
        code = marker.setup + DOCTEST.format(source=block.code, name=block.where)
    script = folder / f"_doc_block_{block.line}.py"
    script.write_text(code, encoding="utf-8")
    check([sys.executable, script.name], folder, block)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # pins pytest's rootdir
    blocks = parse(page.relative_to(ROOT).as_posix(), page.read_text(encoding="utf-8"))
    for block in blocks:
        run_block(block, tmp_path)


# -- the markers themselves ---------------------------------------------------------------

PAGE = """\
# A page

<!-- test: file=svc.py -->
```python
X = 1
```

<!-- test: setup
from svc import X
-->
```python
assert X == 1
```

1. A list item:

   ```python
   print("indented")
   ```

<!-- test: skip: a signature, not code -->
```python
app.requester(name, *, args=None)
```
"""


def test_parse_reads_markers_setup_and_indented_blocks() -> None:
    blocks = parse("page.md", PAGE + "\n```text\nplain\n```\n")

    assert [(b.line, b.lang) for b in blocks] == [
        (4, "python"),
        (11, "python"),
        (17, "python"),
        (22, "python"),
        (26, "text"),
    ]
    assert blocks[0].marker == Marker(file="svc.py")
    assert blocks[1].marker == Marker(setup="from svc import X\n")
    assert blocks[2].code == 'print("indented")\n'
    assert blocks[2].marker == blocks[4].marker == Marker()


def test_parse_reads_a_skip_and_its_reason() -> None:
    assert parse("page.md", PAGE)[-1].marker == Marker(skip="a signature, not code")


def test_a_python_file_block_that_does_not_compile_fails(tmp_path: Path) -> None:
    """A file= block nothing imports is still checked: docs/deploy.md's orders.py was not."""
    page = "<!-- test: file=orders.py -->\n```python\ndef broken(:\n```\n"
    (block,) = parse("page.md", page)
    with pytest.raises(pytest.fail.Exception, match=r"orders\.py does not compile"):
        run_block(block, tmp_path)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<!-- test: skip -->\n```python\nx\n```\n", "`skip` needs a reason"),
        ("<!-- test: skip:   -->\n```python\nx\n```\n", "needs a reason"),
        ("<!-- test: file=a.py skip: why -->\n```python\nx\n```\n", "goes alone"),
        ("<!-- test: fiel=a.py -->\n```python\nx\n```\n", "unknown test marker word"),
        ("<!-- test: file=../a.py -->\n```python\nx\n```\n", "relative path"),
        ("<!-- test: pytest -->\n```python\nx\n```\n", "need file=NAME"),
        ("<!-- test: file=a.py\nx = 1\n-->\n```python\nx\n```\n", "spans several lines"),
        ("<!-- test: setup -->\n```python\nx\n```\n", "needs lines of code"),
        ("<!-- test: file=a.py -->\nSome prose.\n```python\nx\n```\n", "right before a code"),
        ("text\n<!-- test: file=a.py -->\n", "right before a code block"),
        ("<!-- test: file=a.py\n", "without `-->`"),
    ],
)
def test_parse_rejects_bad_markers(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        parse("page.md", text)
