"""LP-8: lifted values looked up by placeholder name miss: names are ``p_conv_weight``, state is keyed ``conv.weight``.

Upstream: placeholder names never equal FQNs (``argN_1`` up to torch 2.3, ``p_*``/``b_*``/``obj_*`` from
2.4: pytorch/pytorch#122452); Torch-TensorRT
looked constants up by node name until 2.14.0 (pytorch/TensorRT#4349): ``placeholder engine
'obj__run_on_acc_0_engine' not found in exp_program.constants``. Fix: every lifted value is resolved
through the graph signature's input specs (``trtshim.compat.programs.program``). Permanent rule, never deleted.
"""

from __future__ import annotations

from trtshim.fixes.registry import Fix

FIX = Fix(
    id="LP-8",
    family="lifted-params",
    title="lifted values are resolved through the graph signature, never by node name",
    affected={"torch": ">=2.2"},
    fixed_in={"torch_tensorrt": "2.14.0"},
    links=("https://github.com/pytorch/TensorRT/pull/4349", "https://github.com/pytorch/pytorch/pull/122452"),
    stage="call",
    how="design",
    lives_in="trtshim.compat.programs.program.input_slots (lifted values found through the signature)",
)
