"""A downstream project's test: its model compiled, saved and loaded through trtshim on the session's row."""

from __future__ import annotations

import torch

from trtshim import compat


class Classifier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def test_round_trip_matches_eager(tmp_path) -> None:
    torch.manual_seed(0)
    model = Classifier().eval()
    x = torch.randn(2, 3, 8, 8)
    batch = torch.export.Dim("batch", max=16)
    compiled = compat.compile(model, (x,), backend="export", dynamic_shapes={"x": {0: batch}})
    loaded = compat.load(compat.save(compiled, tmp_path / "classifier.pt2"))
    x5 = torch.randn(5, 3, 8, 8)
    with torch.inference_mode():
        assert torch.allclose(loaded(x5), model(x5), atol=1e-6)
