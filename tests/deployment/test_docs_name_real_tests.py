"""The docs name tests that exist: every `tests/...py` path in README.md, SECURITY.md and docs/, and every
test SECURITY.md's map cites as proof of a defence (`path::test_name`, or a bare `test_name` after its path)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]


def defined_tests(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_path_in_the_docs_exists():
    named = {(doc.name, match[1]) for doc in DOCS
             for match in re.finditer(r"\b(tests/[\w/]+\.py)\b", doc.read_text(encoding="utf-8"))}
    assert any(doc == "SECURITY.md" for doc, _path in named)
    missing = sorted((doc, path) for doc, path in named if not (ROOT / path).is_file())
    assert missing == []


def test_every_test_security_md_cites_exists():
    cited, missing = 0, []
    for line in (ROOT / "SECURITY.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("| "):
            continue
        current = None
        for match in re.finditer(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`(test_\w+)`", line.split("|")[-2]):
            path, name = (match[1], match[2]) if match[1] else (current, match[3])
            current = path
            if name and path:
                cited += 1
                if not (ROOT / path).is_file() or name not in defined_tests(ROOT / path):
                    missing.append(f"{path}::{name}")
    assert cited >= 10  # the map cites tests by name, and this reads them
    assert missing == []
