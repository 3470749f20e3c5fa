"""SE-6: a saved TensorRT program loads only inside its engine-ABI group; elsewhere the runtime fails late.

Upstream: ``Program to be deserialized targets a different Torch-TensorRT ABI Version (X) than the
Torch-TensorRT Runtime ABI Version (Y)`` (TRTEngine::verify_serialization_fmt); ABI groups per release
are in the matrix data. The embedded plan is also tied to the TensorRT version unless built
version-compatible. Fix: the manifest records the engine ABI, TensorRT version and compatibility flags;
``load`` compares them before deserializing and refuses a cross-ABI load with the reason. Not fixed
upstream (a format property): never deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trtshim.fixes.registry import Fix

if TYPE_CHECKING:
    from trtshim.compat.environment import Environment


def engine_abi(env: Environment) -> str | None:
    """The engine ABI version of the installed torch_tensorrt, from the matrix data."""
    from trtshim.errors import TrtShimError
    from trtshim.matrix.model import Matrix

    if env.torch_tensorrt is None:
        return None
    try:
        release = env.torch_tensorrt.raw.split("+")[0]
        return Matrix.load().abi_group(release, env.torch_tensorrt.name).abi_version
    except TrtShimError:
        return None


def record_engine(manifest: dict[str, Any], module: Any) -> None:
    """Hook ``save.manifest``: for programs that call TensorRT engines, what a loader must match."""
    from trtshim.compat.call.module import ENGINE_KEYS
    from trtshim.compat.programs.program import custom_ops

    if not any(op.namespace == "tensorrt" for op in custom_ops(module.program)):
        return
    env = module.environment
    manifest["engine"] = {
        "torch_tensorrt": env.torch_tensorrt.raw if env.torch_tensorrt else None,
        "flavour": env.torch_tensorrt_flavour,
        "tensorrt": env.tensorrt_version,
        "abi": engine_abi(env),
        # as the builder applied them (compat.backends.engine_builds), not as they were asked for
        "version_compatible": module.engine_options.get("version_compatible", False),
        "hardware_compatible": module.engine_options.get("hardware_compatible", False),
    }
    manifest["engine"].update({k: module.engine_options[k] for k in ENGINE_KEYS if k in module.engine_options})


def check_engine(manifest: dict[str, Any], env: Environment) -> None:
    """Hook ``load.check``: refuse an artifact whose TensorRT engines this stack cannot deserialize."""
    from trtshim.errors import ArtifactCompatibilityWarning, IncompatibleArtifactError, announce

    engine = manifest.get("engine")
    if not engine:
        return
    saved = f"torch_tensorrt {engine.get('torch_tensorrt')} ({engine.get('flavour')}, engine ABI {engine.get('abi')})"
    if env.torch_tensorrt is None:
        raise IncompatibleArtifactError(
            f"the artifact holds TensorRT engines built by {saved}; torch_tensorrt is not installed here",
            f"install {engine.get('flavour')}=={engine.get('torch_tensorrt')} (`trtshim pins --torch-tensorrt "
            f"{engine.get('torch_tensorrt')}`)",
        )
    here = engine_abi(env)
    if engine.get("flavour") != env.torch_tensorrt_flavour or (
        here and engine.get("abi") and here != engine["abi"]
    ):
        raise IncompatibleArtifactError(
            f"the artifact's engines come from {saved}; this stack is {env.torch_tensorrt} "
            f"({env.torch_tensorrt_flavour}, engine ABI {here}): the runtime cannot deserialize them",
            "load it on a torch_tensorrt of the same ABI group (README: Supported versions), or recompile",
        )
    _check_device(engine)
    if engine.get("tensorrt") != env.tensorrt_version and not engine.get("version_compatible"):
        announce(
            f"the artifact's engines were built with TensorRT {engine.get('tensorrt')}, this stack has "
            f"{env.tensorrt_version}, and they are not version-compatible: deserialization may fail",
            ArtifactCompatibilityWarning,
        )


def _check_device(engine: dict[str, Any]) -> None:
    """Engines that are not hardware-compatible run only on the compute capability they were built for."""
    from trtshim.errors import IncompatibleArtifactError

    built = engine.get("device")
    if not built or engine.get("hardware_compatible"):
        return
    import torch

    if not torch.cuda.is_available():
        raise IncompatibleArtifactError(
            f"the artifact's engines were built for {built.get('name')} (compute capability "
            f"{built['compute_capability']}); this machine has no CUDA device",
            "load it on a machine with that GPU, or recompile (load(..., on_mismatch='recompile'))",
        )
    index = torch.cuda.current_device()
    here = "{}.{}".format(*torch.cuda.get_device_capability(index))
    if here != built["compute_capability"]:
        raise IncompatibleArtifactError(
            f"the artifact's engines were built for compute capability {built['compute_capability']} "
            f"({built.get('name')}) and are not hardware-compatible; this GPU ({torch.cuda.get_device_name(index)}) "
            f"is {here}",
            "recompile here (load(..., on_mismatch='recompile')), or build with hardware_compatible=True",
        )


FIX = Fix(
    id="SE-6",
    family="serialization",
    title="engine ABI and TensorRT version recorded at save, checked before load",
    # every stack checks: one without torch_tensorrt must refuse engines too
    affected={"torch": ">=2.2"},
    fixed_in={},
    links=("https://github.com/pytorch/TensorRT/blob/main/core/runtime/runtime.h",),
    stage="load",
    how="transform",
    hooks={"save.manifest": record_engine, "load.check": check_engine},
)
