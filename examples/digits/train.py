"""Train the bundled example: a small CNN on scikit-learn's digits (1797 8x8 images).

    pip install torch==2.13.0 scikit-learn onnx   # CPU build; torch is not a tvm-prune dependency
    python examples/digits/train.py

Writes, next to this file (each atomically): ``digits_cnn.onnx`` (input ``input`` [1, 1, 8, 8],
output ``logits`` [1, 10], BatchNormalization kept as separate nodes, one residual block),
``digits_test.npz`` (the held-out 20 %: ``input``, ``label``) and ``digits_calib.npz``
(64 training images with labels, for calibration). Deterministic: fixed seeds, fixed split.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).resolve().parent
SEED = 0


class DigitsCNN(nn.Module):
    """conv-bn-relu x2, maxpool, a residual block, conv-bn-relu, global pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.block = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
        )
        self.head = nn.Sequential(
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(x)


def main() -> None:
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.2, stratify=labels, random_state=SEED
    )

    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    epochs = 40
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    generator = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            batch = order[start : start + 64]
            # Random shifts by up to one pixel: the images are tiny, so this is most of the
            # augmentation that keeps the small network from overfitting.
            shift = torch.randint(-1, 2, (2,), generator=generator).tolist()
            inputs = torch.roll(xt[batch], shifts=shift, dims=(2, 3))
            loss = nn.functional.cross_entropy(model(inputs), yt[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        if epoch % 10 == 9 or epoch == epochs - 1:
            print(
                f"epoch {epoch + 1}: train acc {accuracy(model, x_train, y_train):.4f}, "
                f"test acc {accuracy(model, x_test, y_test):.4f}"
            )

    model.eval()
    onnx_path = HERE / "digits_cnn.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        tmp_model = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, 8, 8),),
            str(tmp_model),
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
            # Keep BatchNormalization as its own node: pruning reads it as the layer's scale.
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,
        )
        os.replace(tmp_model, onnx_path)
    save_npz(HERE / "digits_test.npz", input=x_test, label=y_test)
    save_npz(HERE / "digits_calib.npz", input=x_train[:64], label=y_train[:64])
    print(
        f"test accuracy {accuracy(model, x_test, y_test):.4f} on {len(x_test)} images; "
        f"wrote {onnx_path.name} ({onnx_path.stat().st_size} bytes)"
    )


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(images)).argmax(1).numpy()
    model.train()
    return float(np.mean(predicted == labels))


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(fd, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
