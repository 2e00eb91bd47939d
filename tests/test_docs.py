"""The repository stands alone: no doc or comment points at files that are not shipped with it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: references to the design notes the project was started from, which are not in the repository
OUTSIDE = re.compile(r"\.\./shared|DESIGN\.md|STYLE\.md|TEMPORAL\.md|providers\.md §|pitfall \d")


def test_no_reference_points_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "*.py", "*.md", "Makefile", "*.yml", "*.toml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    offenders = [
        f"{name}:{n}"
        for name in tracked
        if name != "tests/test_docs.py" and (ROOT / name).exists()
        for n, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert not offenders, offenders


def test_the_provider_facts_page_has_every_trap_the_code_names() -> None:
    page = (ROOT / "docs" / "providers.md").read_text(encoding="utf-8")
    traps = set(re.findall(r"^(\d+)\. ", page, flags=re.MULTILINE))
    named: set[str] = set()
    for path in [*ROOT.glob("durabatch/**/*.py"), *ROOT.glob("docs/*.md")]:
        named.update(re.findall(r"trap (\d+)", path.read_text(encoding="utf-8")))
    assert named and named <= traps, sorted(named - traps)
