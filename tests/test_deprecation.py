"""trtshim's own deprecation policy: old names keep working with a warning that names the replacement
and the version they go away in; once trtshim reaches that version this suite fails until they are gone."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import trtshim
from trtshim import deprecation


def _import_everything() -> None:
    for info in pkgutil.walk_packages(trtshim.__path__, "trtshim."):
        if info.name.startswith(("trtshim.testing.pytest_plugin", "trtshim.__main__")):
            continue
        if info.name == "trtshim.testing.flattening_engine_standin":  # importing it builds a C++ library
            continue
        importlib.import_module(info.name)


def test_no_deprecated_name_outlives_its_version() -> None:
    _import_everything()
    late = deprecation.overdue()
    assert not late, "remove these (their removed_in version is reached): " + "; ".join(d.message() for d in late)


def test_an_alias_warns_with_its_replacement_and_version(monkeypatch) -> None:
    monkeypatch.setattr(deprecation, "DEPRECATED", {})

    def new_name(x: int) -> int:
        return x + 1

    class NewThing:
        def __init__(self, v: int) -> None:
            self.v = v

    old = deprecation.deprecated_alias(new_name, "old_name", since="0.2", removed_in="0.4", module="trtshim.x")
    with pytest.warns(deprecation.TrtShimDeprecationWarning, match=r"trtshim.x.old_name is deprecated since trtshim 0.2 and goes away in 0.4: use .*new_name"):
        assert old(1) == 2
    Old = deprecation.deprecated_alias(NewThing, "OldThing", since="0.2", removed_in="0.3", module="trtshim.x")
    with pytest.warns(FutureWarning, match="OldThing"):
        assert isinstance(Old(3), NewThing) and Old(3).v == 3
    getattr_ = deprecation.module_getattr("trtshim.x", {"OLD": ("NEW", 7, "0.2", "0.5")})
    with pytest.warns(deprecation.TrtShimDeprecationWarning, match="trtshim.x.OLD .* use trtshim.x.NEW"):
        assert getattr_("OLD") == 7
    with pytest.raises(AttributeError):
        getattr_("MISSING")
    assert [d.name for d in deprecation.overdue("0.3")] == ["trtshim.x.OldThing"]
    assert {d.name for d in deprecation.overdue("0.5")} == {"trtshim.x.old_name", "trtshim.x.OldThing", "trtshim.x.OLD"}
    with pytest.raises(ValueError, match="must come after"):
        deprecation.deprecated_alias(new_name, "bad", since="0.4", removed_in="0.4")
