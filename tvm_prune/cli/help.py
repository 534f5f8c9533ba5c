"""Every help text of the command line, in one place."""

PROG_DESCRIPTION = (
    "Prune, rewrite and compile ONNX models with Apache TVM into small, fast libraries for "
    "edge devices (ARM CPUs, Mali GPUs, Hexagon DSPs)."
)
VERBOSE = "log every step and show Python tracebacks on errors"

COMPILE = "compile an ONNX model into a package (model.tar: mod.so + metadata.json)"
COMPILE_MODEL = "the ONNX model file"
TARGET = (
    "where the code runs: a preset name (see `tvm-prune targets`), a JSON dict such as "
    '\'{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}\', a TVM tag such '
    'as qcom/hexagon-v68, or a tvmc string such as "llvm -mtriple=aarch64-linux-gnu -mattr=+neon"'
    " (default: host)"
)
OUTPUT_PACKAGE = "the package to write (default: model.tar); written atomically"
INPUT_SHAPES = (
    'static input shapes, tvmc syntax: "name:[1,3,224,224],other:[1,10]"; required for inputs '
    "with dynamic dimensions"
)
CROSS_COMPILER = (
    "compiler driver that links the library (e.g. aarch64-linux-gnu-g++), or 'ndk' for the "
    "Android NDK; overrides the preset's"
)
CROSS_COMPILER_OPTIONS = "extra options for the cross compiler, as one quoted string"
TUNING_RECORDS = "MetaSchedule database folder; its records are used where they match"
OPT_LEVEL = "TVM optimisation level, 0-3 (default: 3)"
DISABLED_PASS = (
    "skip the named pass (tvm-prune rewrite or TVM pass); repeat the flag or separate names "
    "with commas"
)

RUN = "run a package on this machine's CPU, or on a device over TVM RPC"
RUN_PACKAGE = "the package (model.tar) to run"
INPUTS = ".npz file keyed by the model's input names (default: generated with --fill-mode)"
OUTPUTS = ".npz file to write the outputs to, keyed by output name; written atomically"
FILL_MODE = "how to generate inputs not given with --inputs (default: random)"
PRINT_TIME = "time the model with --repeat x --number runs and print the statistics"
REPEAT = "measurements to take with --print-time (default: 10)"
NUMBER = "runs averaged in each measurement (default: 1)"
PRINT_TOP = "print the N largest values of the first output with their indices"
DEVICE = "device to run on (default: cpu)"
RPC_TRACKER = "run on a device over RPC: the tracker as HOST:PORT (tvmc's flag)"
RPC_KEY = "the device key registered at the tracker"
RPC_HOST = "run on an RPC server directly (no tracker): its host"
RPC_PORT = "the RPC server's port"
MIN_REPEAT_MS = "raise --number until one measurement lasts at least this long (default: 0)"
COMPARE = (
    "an .npz of reference outputs (e.g. from the host build); print each output's error and "
    "fail if one exceeds --tolerance"
)
COMPARE_TOLERANCE = "largest allowed max|out - ref| / max|ref| for --compare (default: 1e-4)"

RPC = "start RPC services on this machine: a tracker, a server, or the emulated aarch64 device"
RPC_SERVICE = "tracker | server | emulate"
RPC_BIND = "address to listen on (default: 127.0.0.1)"
RPC_SERVICE_PORT = "port to listen on (default: 9190 for the tracker, 9090 for servers)"
RPC_SERVICE_TRACKER = "tracker to register the server with, HOST:PORT"
RPC_SERVICE_KEY = (
    "device key to register under (default: 'aarch64-linux' for emulate, else 'local')"
)
RPC_CACHE = "where the emulated device is set up (default: ~/.cache/tvm-prune/emulated-aarch64)"
RPC_CPU = "CPU qemu emulates, to match the board (default: cortex-a72)"

TARGETS = "list the target presets, or show one in full"
TARGETS_NAME = "a preset to show in full (JSON)"

PRUNE = "prune the conv/dense weights of an ONNX model and write the report (and pruned ONNX)"
PRUNE_MODEL = "the ONNX model file"
PRUNE_METHOD = (
    "magnitude: one global cut on raw |w| (baseline); layerwise: per-layer thresholds from each "
    "layer's own magnitude distribution (one cut on LAMP scores, each weight's share of its "
    "layer's tail energy; needs --sparsity); greedy: per-layer sensitivity scan, "
    "then the layer with the best predicted loss per weight removed, one step at a time "
    "(--sparsity and/or --tolerance); behavior: largest thresholds whose output change stays "
    "within --tolerance; channel: remove whole channels down to --macs (--importance)"
)
SPARSITY = "target fraction of prunable weights set to zero, e.g. 0.6"
TOLERANCE = (
    "allowed loss: units of --metric; for greedy with labels and no --metric, accuracy points; "
    "for channel gates, the accuracy drop a round may cost (fraction, default 0.01)"
)
MACS = "channel: fraction of the multiply-accumulates to keep, e.g. 0.5"
IMPORTANCE = (
    "channel: l1/l2 filter magnitude (default), or gates learned on --calib labels with the "
    "accuracy in the loop"
)
ROUND_CHANNELS = (
    "channel: pruned layers keep a multiple of N channels (the vector width: 8 on AVX2, 4 on "
    "NEON); ragged channel counts run slower"
)
FINE_TUNE = "channel: recovery fine-tuning steps (batches of 32) on --calib labels after pruning"
METRIC = (
    "behaviour-change metric: kl or top1 (classifiers), rel-l2 or cosine (dense maps); "
    "default kl for 2-d outputs, else rel-l2"
)
CALIB = (
    ".npz with one array per model input (N samples) and optional 'label'; default: random "
    "inputs (a proxy, with a warning)"
)
ACCURACY = (
    "your accuracy function, FILE.py:FUNCTION: called with the outputs on all --calib samples "
    "(one array per output), returns accuracy in [0, 1]; replaces top-1 against 'label'"
)
REPORT = "write the pruning report (JSON) here"
PLOT = "write PNG plots (sensitivity curves, loss vs sparsity) into this folder (matplotlib)"
PRUNE_OUTPUT = (
    "write the pruned model as ONNX (the original graph with pruned weights; for channel, "
    "the graph with the smaller layers)"
)
COMPENSATION = (
    "correct what pruning shifts, from calibration data: least-squares re-solves each layer's "
    "kept weights and bias to reproduce its output (default), bias only shifts the bias, none"
)
RAW_WEIGHTS = "judge magnitudes on the stored weights instead of BN-folded effective weights"
COMPILE_PRUNE = "prune the weights with this method before compiling (options as for prune)"

BUNDLE = (
    "write what a Linux device needs to run a package without Python: the model library, the "
    "TVM runtime libraries for its CPU, a C++ runner built against them, and a manifest"
)
BUNDLE_PACKAGE = "a package from tvm-prune compile (model.tar)"
BUNDLE_OUTPUT = "folder to create (must not exist, or be empty)"
BUNDLE_TARGET = "check that the package was compiled for this preset"
BUNDLE_CXX = "C++ compiler for the runner (default: the package's cross compiler, or g++)"

TUNE = (
    "tune a model's kernels with MetaSchedule (XGBoost cost model) into a tuning-records folder "
    "for `compile --tuning-records`; re-running with the same folder resumes"
)
TUNE_TRIALS = (
    "measurements per kernel, the zero-tuning rules' schedule counting as the first; "
    "trials already in the folder count too"
)
TUNE_OUTPUT = "the records folder (MetaSchedule JSON database; created or resumed)"
TUNE_RPC_TRACKER = "measure on a device over RPC: the tracker as HOST:PORT"
