"""The project imports Dagster's public API only: a private module (``dagster._...``) can
change or vanish in any release without notice."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rl_assets"


def private_dagster_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dagster._"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("dagster._")]
    return found


def test_the_detector_finds_both_import_forms():
    assert private_dagster_imports(
        "from dagster._core.event_api import X\nimport dagster._utils"
    ) == [
        "dagster._core.event_api",
        "dagster._utils",
    ]
    assert private_dagster_imports("import dagster as dg\nfrom dagster import asset") == []


def test_no_module_of_the_package_imports_a_private_dagster_module():
    offenders = {
        str(path.relative_to(PACKAGE)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if (found := private_dagster_imports(path.read_text()))
    }
    assert offenders == {}
