"""What the TensorRT builder really did, read back from the builder itself.

torch_tensorrt decides profiles and builder flags inside its interpreter and logs what it drops. trtshim
watches the two calls every release makes for every engine (``IBuilderConfig.add_optimization_profile``
and ``Builder.build_serialized_network``) for the duration of one compile, and reads from the objects
TensorRT holds: each network input's (min, opt, max) in every profile, the builder flags set, the
hardware-compatibility level, strong typing, and the size of the serialized plan. The patch is a scope
(installed on entry, restored on exit) and records only the calls of the thread that opened it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: trtshim's engine options and how each shows in what the builder applied
REQUESTABLE = ("version_compatible", "hardware_compatible", "refit")


@dataclass(frozen=True)
class InputProfile:
    """One engine input in one optimization profile."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]
    profile: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "profile": self.profile, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass(frozen=True)
class EngineBuild:
    """One ``build_serialized_network`` call as TensorRT saw it."""

    inputs: tuple[str, ...]  # network input names, in order
    profiles: tuple[InputProfile, ...]
    flags: tuple[str, ...]  # BuilderFlag names set on the config
    hardware_compatibility: str  # HardwareCompatibilityLevel name ("NONE" where not set or not supported)
    strongly_typed: bool
    nbytes: int | None  # size of the serialized plan; None: the build failed

    def applied(self) -> dict[str, bool]:
        """trtshim's engine options as this engine has them."""
        return {
            "version_compatible": "VERSION_COMPATIBLE" in self.flags,
            "hardware_compatible": self.hardware_compatibility not in ("NONE", ""),
            "refit": "REFIT" in self.flags or "REFIT_IDENTICAL" in self.flags,
            "strongly_typed": self.strongly_typed,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": list(self.inputs),
            "profiles": [p.to_dict() for p in self.profiles],
            "flags": list(self.flags),
            "hardware_compatibility": self.hardware_compatibility,
            "strongly_typed": self.strongly_typed,
            "bytes": self.nbytes,
            "applied": self.applied(),
        }


@dataclass
class BuildLog:
    """The builds of one compile, filled while its ``recording`` scope is open."""

    builds: list[EngineBuild] = field(default_factory=list)
    # each dynamic dim's range the engines were built for: {"symbol", "dim", "min", "opt", "max"}
    dims: list[dict[str, Any]] = field(default_factory=list)

    def dropped(self, requested: dict[str, Any]) -> dict[str, str]:
        """Options asked for (truthy) that some engine was built without: option -> what it has instead."""
        out: dict[str, str] = {}
        for build in self.builds:
            applied = build.applied()
            for name in REQUESTABLE:
                if requested.get(name) and not applied[name]:
                    out[name] = (
                        f"hardware compatibility level {build.hardware_compatibility}"
                        if name == "hardware_compatible"
                        else f"builder flags {', '.join(build.flags) or 'none'}"
                    )
        return out


_lock = threading.Lock()


def _dims(shape: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)


def _flags(trt: Any, config: Any) -> tuple[str, ...]:
    names = []
    for name, flag in trt.BuilderFlag.__members__.items():
        try:
            if config.get_flag(flag):
                names.append(name)
        except Exception:  # a flag this TensorRT declares but rejects reading
            continue
    return tuple(names)


def _strongly_typed(trt: Any, network: Any) -> bool:
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        return False
    try:
        return bool(network.get_flag(flag))
    except Exception:
        return False


def _profiles(network: Any, profiles: list[Any]) -> tuple[InputProfile, ...]:
    out = []
    for index, profile in enumerate(profiles):
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            if not tensor.is_shape_tensor and all(int(d) >= 0 for d in tensor.shape):
                continue  # a static input has no profile: asking for one is a TensorRT API error that fails the build
            try:
                shapes = profile.get_shape_input(tensor.name) if tensor.is_shape_tensor else profile.get_shape(tensor.name)
            except Exception:
                continue
            if shapes and len(shapes) == 3 and len(shapes[0]):
                low, opt, high = (_dims(s) for s in shapes)
                out.append(InputProfile(tensor.name, low, opt, high, profile=index))
    return tuple(out)


def _read(trt: Any, network: Any, config: Any, profiles: list[Any], plan: Any) -> EngineBuild:
    level = getattr(config, "hardware_compatibility_level", None)
    return EngineBuild(
        inputs=tuple(network.get_input(i).name for i in range(network.num_inputs)),
        profiles=_profiles(network, profiles),
        flags=_flags(trt, config),
        hardware_compatibility=getattr(level, "name", "NONE") if level is not None else "NONE",
        strongly_typed=_strongly_typed(trt, network),
        nbytes=None if plan is None else int(plan.nbytes),
    )


@contextmanager
def recording() -> Iterator[BuildLog]:
    """Record every engine this thread builds while the scope is open (TensorRT imported, else nothing)."""
    log = BuildLog()
    try:
        trt = importlib.import_module("tensorrt")
    except Exception:
        yield log
        return
    owner = threading.get_ident()
    added: dict[int, list[Any]] = {}
    config_cls, builder_cls = trt.IBuilderConfig, trt.Builder
    with _lock:
        add_profile, build = config_cls.add_optimization_profile, builder_cls.build_serialized_network

        def add_optimization_profile(self: Any, profile: Any) -> Any:
            if threading.get_ident() == owner:
                added.setdefault(id(self), []).append(profile)
            return add_profile(self, profile)

        def build_serialized_network(self: Any, network: Any, config: Any) -> Any:
            plan = build(self, network, config)
            if threading.get_ident() == owner:
                log.builds.append(_read(trt, network, config, added.pop(id(config), []), plan))
            return plan

        config_cls.add_optimization_profile = add_optimization_profile
        builder_cls.build_serialized_network = build_serialized_network
    try:
        yield log
    finally:
        with _lock:
            config_cls.add_optimization_profile = add_profile
            builder_cls.build_serialized_network = build
