"""Training a classifier's weights on the host with TVM's own autodiff.

The model's ``main`` becomes ``train(input, *weights, labels) -> (loss, logits)`` with a mean
cross-entropy loss, and ``relax.transform.Gradient`` adds ``train_adjoint``, which also returns
the gradients of the weights. In TVM 0.27 ``Gradient`` knows ``conv2d``, ``max_pool2d``,
``avg_pool2d``, ``matmul``, ``relu``, ``silu``, ``sigmoid``, ``tanh`` and the elementwise ops,
but not ``batch_norm``, ``adaptive_avg_pool2d`` or ``clip``: batch norms are decomposed into
arithmetic with their running statistics (``DecomposeOpsForInference``; the statistics stay
fixed), a global ``adaptive_avg_pool2d`` becomes a ``mean``, and ``clip`` becomes
``maximum``/``minimum``. Other ops without a gradient fail with :class:`TrainingError`.

The weights are arguments, not constants, so one compiled module serves every step; the
optimizer (Adam) runs in numpy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import tvm
from tvm import relax

from ..errors import TvmPruneError
from ..model import Model
from ..relax_rewrite import RewriteRefused, rewrite_calls
from .data import CalibrationData
from .engine import host_vm


class TrainingError(TvmPruneError):
    """A model or data set the trainer cannot handle."""


class Trainer:
    """Loss, logits and weight gradients of a single-input classifier, compiled once.

    Parameters
    ----------
    model : Model
        Loaded from an ONNX file (``model.source``), which is imported again with a batch of
        ``batch`` samples. Its output must be ``[N, classes]`` logits or their softmax.
    batch : int
        Samples per step.
    """

    def __init__(self, model: Model, *, batch: int = 32):
        from ..frontend import load_onnx

        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise TrainingError(
                f"training needs one input and one output; {model.source} has "
                f"{len(model.inputs)} and {len(model.outputs)}"
            )
        spec = model.inputs[0]
        if len(model.outputs[0].shape) != 2:
            raise TrainingError(
                f"training needs [N, classes] outputs; {model.source} outputs "
                f"{list(model.outputs[0].shape)}"
            )
        self.batch = batch
        self.input_name = spec.name
        batched = load_onnx(model.source, input_shapes={spec.name: (batch, *spec.shape[1:])})
        self.weight_names = [v.name for v in batched.mod["main"].params[1:]]
        frozen = _batch_norm_statistics(batched.mod)
        self.trainable = [n for n in self.weight_names if n not in frozen]
        module = _training_module(batched.mod, batch, set(self.trainable))
        # The host preset's pipeline: TVM's plain ``llvm`` build runs naive loops, too slow to
        # train anything larger than the digits CNN (conv backward is conv-like reductions).
        self.schedule_report: dict = {}
        self._vm = host_vm(module, self.schedule_report)

    def _args(self, params: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray):
        values = [x, *(params[name] for name in self.weight_names), y.astype(np.int64)]
        return [tvm.runtime.tensor(np.ascontiguousarray(v)) for v in values]

    def loss_and_grads(
        self, params: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy on one batch and its gradient for every trainable weight."""
        (loss, _), grads = self._vm["train_adjoint"](*self._args(params, x, y))
        return float(loss.numpy()), {
            name: g.numpy() for name, g in zip(self.trainable, grads, strict=True)
        }

    def evaluate(self, params: Mapping[str, np.ndarray], data: CalibrationData):
        """``(mean cross-entropy, top-1 accuracy)`` over all of ``data``."""
        x, y = _labelled(data, self.input_name)
        losses, hits = [], []
        for start in range(0, len(x), self.batch):
            count = min(self.batch, len(x) - start)
            index = np.arange(start, start + self.batch) % len(x)  # last batch wraps around
            loss, logits = self._vm["train"](*self._args(params, x[index], y[index]))
            losses.append(float(loss.numpy()) * count)
            hits.append(np.argmax(logits.numpy()[:count], axis=1) == y[start : start + count])
        return sum(losses) / len(x), float(np.mean(np.concatenate(hits)))

    def batches(self, data: CalibrationData, *, seed: int = 0) -> Iterator[tuple]:
        """Endless shuffled batches ``(x, y)`` of ``data``."""
        x, y = _labelled(data, self.input_name)
        rng = np.random.default_rng(seed)
        while True:
            order = rng.permutation(len(x))
            order = np.concatenate([order, rng.permutation(len(x))[: -len(order) % self.batch]])
            for start in range(0, len(order) - self.batch + 1, self.batch):
                index = order[start : start + self.batch]
                yield x[index], y[index]


class Adam:
    """Adam on a dict of numpy arrays (Kingma & Ba 2015, default betas)."""

    def __init__(self, lr: float, *, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.moments: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.steps = 0

    def step(self, values: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> dict:
        """New values after one step along ``grads`` (the inputs are not changed)."""
        self.steps += 1
        b1, b2 = self.betas
        result = dict(values)
        for name, grad in grads.items():
            m, v = self.moments.get(name, (np.zeros_like(grad), np.zeros_like(grad)))
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad * grad
            self.moments[name] = (m, v)
            m_hat, v_hat = m / (1 - b1**self.steps), v / (1 - b2**self.steps)
            step = self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
            result[name] = (values[name] - step).astype(values[name].dtype)
        return result


def fine_tune(
    trainer: Trainer,
    params: Mapping[str, np.ndarray],
    data: CalibrationData,
    *,
    steps: int,
    lr: float = 1e-3,
    zero: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``params`` after ``steps`` Adam steps on ``data``'s cross-entropy.

    ``zero`` maps a weight name to a boolean mask of entries kept at zero (removed channels),
    so the result is still the masked dense model that ``RemoveChannels`` reproduces exactly.
    """
    optimizer = Adam(lr)
    params = dict(params)
    batches = trainer.batches(data, seed=seed)
    for _ in range(steps):
        _, grads = trainer.loss_and_grads(params, *next(batches))
        params = optimizer.step(params, grads)
        for name, mask in (zero or {}).items():
            params[name] = np.where(mask, 0, params[name]).astype(params[name].dtype)
    return params


def _batch_norm_statistics(mod: tvm.IRModule) -> set[str]:
    """Names of the weights used as batch-norm running mean/variance. They are not trained:
    with few samples, the statistics of the pretrained model are the safe choice."""
    names = set()
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call) and value.op == tvm.ir.Op.get("relax.nn.batch_norm"):
                names.update(a.name for a in value.args[3:5] if isinstance(a, relax.Var))
    return names


def _labelled(data: CalibrationData, input_name: str) -> tuple[np.ndarray, np.ndarray]:
    if data.labels is None:
        raise TrainingError(f"training needs labels: {data.source} has no 'label' array")
    x = data.inputs[input_name]  # [N, 1, ...]: one batch-1 model input per sample
    x = x.reshape(len(x), *x.shape[2:])
    if len(data.labels) != len(x):
        raise TrainingError(
            f"{data.source}: {len(data.labels)} labels for {len(x)} samples of '{input_name}'"
        )
    return x, data.labels.astype(np.int64)


def _training_module(mod: tvm.IRModule, batch: int, trainable: set[str]) -> tvm.IRModule:
    mod = relax.transform.DecomposeOpsForInference()(mod)
    mod = rewrite_calls(mod, "relax.nn.adaptive_avg_pool2d", _global_pool_as_mean, [])
    mod = rewrite_calls(mod, "relax.clip", _clip_as_max_min, [])
    mod = relax.transform.DeadCodeElimination()(mod)
    main = mod["main"]
    if len(main.body.blocks) != 1 or not isinstance(main.body.blocks[0], relax.DataflowBlock):
        raise TrainingError("training needs main as one dataflow block")
    bindings = list(main.body.blocks[0].bindings)
    logits = main.body.body
    # A softmax output is trained through its logits (log_softmax of them is the same loss).
    last = bindings[-1]
    if last.var.same_as(logits) and getattr(last.value, "op", None) == tvm.ir.Op.get(
        "relax.nn.softmax"
    ):
        logits = last.value.args[0]
        bindings = bindings[:-1]
    labels = relax.Var("labels", relax.TensorType((batch,), "int64"))
    log_probs = relax.DataflowVar("log_probs", logits.ty)
    loss = relax.Var("loss", relax.TensorType((), "float32"))
    logits_out = relax.Var("logits", logits.ty)
    bindings += [
        relax.VarBinding(log_probs, relax.op.nn.log_softmax(logits)),
        relax.VarBinding(loss, relax.op.nn.nll_loss(log_probs, labels, reduction="mean")),
        relax.VarBinding(logits_out, logits),
    ]
    outputs = relax.Tuple([loss, logits_out])  # Gradient differentiates the first field
    body = relax.SeqExpr([relax.DataflowBlock(bindings)], outputs)
    train = relax.Function([*main.params, labels], body, relax.TupleType([loss.ty, logits.ty]))
    # A public symbol, or the build's dead-code pass drops it (only train_adjoint is public).
    train = train.with_attr("global_symbol", "train")
    module = relax.transform.Normalize()(tvm.IRModule({"train": train}))
    grads = [v for v in module["train"].params if v.name in trainable]
    try:
        return relax.transform.Gradient("train", require_grads=grads)(module)
    except RuntimeError as exc:  # tvm.error.* derive from it
        reason = str(exc).strip().splitlines()[-1]
        raise TrainingError(f"relax Gradient cannot differentiate the model: {reason}") from exc


def _global_pool_as_mean(mutator, call, entry):
    if [int(d) for d in call.attrs.output_size or ()] not in ([1, 1], [1]):
        raise RewriteRefused("not a global pool")
    return relax.op.mean(call.args[0], axis=[2, 3], keepdims=True)


def _clip_as_max_min(mutator, call, entry):
    low, high = call.args[1:]
    dtype = call.args[0].ty.dtype
    low, high = (relax.const(float(v.value), dtype) for v in (low, high))
    return relax.op.minimum(relax.op.maximum(call.args[0], low), high)
