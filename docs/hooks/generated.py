"""mkdocs hook: pages generated from the code at build time, so they never drift from it: the fix
catalogue (``trtshim.fixes.REGISTRY``), troubleshooting by error class (``trtshim.errors``) and the
changelog (``CHANGELOG.md``). Imports no torch."""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _importable() -> None:
    """trtshim from this checkout (mkdocs may run outside an environment that installed it)."""
    src = os.path.join(ROOT, "src")
    if src not in sys.path:
        sys.path.insert(0, src)


def _doc(obj: Any) -> str:
    return " ".join(inspect.cleandoc(obj.__doc__ or "").split())


def fixes_page() -> str:
    from trtshim.fixes import REGISTRY

    lines = [
        "# Fix catalogue",
        "",
        "Every upstream defect trtshim knows, generated from `trtshim.fixes.REGISTRY` (one module a defect).",
        "A fix applies where every `affected` range holds in the installed stack (`trtshim fixes` shows the",
        "verdicts here); `hooks` are the named points where its code runs; a fix without hooks is a rule of",
        "how trtshim's own code is written (`lives in`).",
        "",
        "| id | defect | affected | fixed in | how | hooks / lives in |",
        "|---|---|---|---|---|---|",
    ]
    for fix in REGISTRY:
        affected = ", ".join(f"{k}{v}" for k, v in fix.affected.items()) or "-"
        fixed = ", ".join(f"{k} {v}" if v else f"{k}: not fixed upstream" for k, v in fix.fixed_in.items()) or "-"
        where = ", ".join(f"`{p}`" for p in fix.hooks) or f"`{fix.lives_in}`"
        lines.append(f"| {fix.id} | {fix.title} | {affected} | {fixed} | {fix.how} | {where} |")
    lines += ["", "## Each fix", ""]
    for fix in REGISTRY:
        source = next((m for m in sys.modules.values() if getattr(m, "FIX", None) is fix), None)
        lines += [f"### {fix.id}: {fix.title}", "", inspect.cleandoc(getattr(source, "__doc__", "") or ""), ""]
        lines += [f"- links: {', '.join(f'<{link}>' for link in fix.links) or '-'}", f"- stages: {', '.join(fix.stages)}", ""]
    return "\n".join(lines)


def troubleshooting_page() -> str:
    from trtshim import errors

    def rows(base: type) -> list[str]:
        out = []
        for name, cls in sorted(vars(errors).items()):
            if isinstance(cls, type) and issubclass(cls, base) and cls is not base:
                parents = ", ".join(b.__name__ for b in cls.__bases__)
                out.append(f"| `{name}` | {parents} | {_doc(cls)} |")
        return out

    return "\n".join(
        [
            "# Troubleshooting",
            "",
            "Every error trtshim raises is a `trtshim.errors.TrtShimError` with a one-line `reason` and a `hint`",
            "(printed under it); every warning is a `TrtShimWarning`. Catch the class, act on the hint. Generated",
            "from `trtshim.errors`.",
            "",
            "## Errors",
            "",
            "| class | is a | when |",
            "|---|---|---|",
            *rows(errors.TrtShimError),
            "",
            "## Warnings",
            "",
            "| class | is a | when |",
            "|---|---|---|",
            *rows(errors.TrtShimWarning),
            "",
            "A warning can be made an error where your deployment must not fall back:",
            "`warnings.simplefilter('error', trtshim.errors.BackendFallbackWarning)`.",
            "",
        ]
    )


def changelog_page() -> str:
    with open(os.path.join(ROOT, "CHANGELOG.md")) as fh:
        return fh.read()


PAGES = {"fixes.md": fixes_page, "troubleshooting.md": troubleshooting_page, "changelog.md": changelog_page}


def on_files(files: Files, config: Any) -> Files:
    _importable()
    for name, render in PAGES.items():
        files.append(File.generated(config, name, content=render()))
    return files
