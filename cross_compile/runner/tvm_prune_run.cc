// tvm_prune_run: run a tvm-prune model library on a device without Python.
//
//   tvm_prune_run mod.so INPUT.npy... [--out DIR] [--repeat N]
//
// Inputs are .npy files (C order, little endian) in the model's input order (the bundle's
// manifest.json lists it). Each output is written as DIR/output_<i>.npy and its shape printed;
// with --repeat N the model runs N more times and the latency (ms) is printed as
// "time_ms mean=.. median=.. min=.. max=..". Exit code 0 on success, 1 with a one-line message
// on stderr otherwise.
//
// Built by `tvm-prune bundle` against the TVM runtime of the pinned wheels (libtvm_runtime.so,
// libtvm_ffi.so, found next to this binary through its $ORIGIN rpath). Only tvm-ffi's headers are
// used: the wheel's tvm/runtime headers include TVM's source tree. libtvm_runtime.so is linked
// for its side effect (it registers the loader of the Relax VM executable in mod.so).
#include <dlpack/dlpack.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <cstdlib>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace ffi = tvm::ffi;

// 64-byte aligned CPU memory for input tensors, as TVM's own CPU allocator gives.
struct AlignedCpuAlloc {
  void AllocData(DLTensor* tensor) {
    size_t size = ffi::GetDataSize(*tensor);
    tensor->data = std::aligned_alloc(64, (size + 63) / 64 * 64);
    if (tensor->data == nullptr) throw std::runtime_error("out of memory");
  }
  void FreeData(DLTensor* tensor) { std::free(tensor->data); }
};

struct NpyArray {
  std::vector<int64_t> shape;
  DLDataType dtype;
  std::vector<char> data;
};

// The .npy descr codes the runner reads and writes.
DLDataType DTypeFromDescr(const std::string& descr, const std::string& file) {
  static const struct {
    const char* descr;
    DLDataType dtype;
  } kTypes[] = {
      {"<f4", {kDLFloat, 32, 1}}, {"<f8", {kDLFloat, 64, 1}}, {"<f2", {kDLFloat, 16, 1}},
      {"<i8", {kDLInt, 64, 1}},   {"<i4", {kDLInt, 32, 1}},   {"|i1", {kDLInt, 8, 1}},
      {"|u1", {kDLUInt, 8, 1}},   {"|b1", {kDLBool, 8, 1}},
  };
  for (const auto& t : kTypes) {
    if (descr == t.descr) return t.dtype;
  }
  throw std::runtime_error(file + ": unsupported dtype '" + descr + "'");
}

std::string DescrFromDType(DLDataType dtype) {
  const char* kind = dtype.code == kDLFloat  ? "f"
                     : dtype.code == kDLInt  ? "i"
                     : dtype.code == kDLUInt ? "u"
                                             : "b";
  int bytes = dtype.bits / 8;
  return std::string(bytes == 1 ? "|" : "<") + kind + std::to_string(bytes);
}

// The value of 'key' in the .npy header dict, as written by numpy.
std::string HeaderField(const std::string& header, const std::string& key,
                        const std::string& file) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) throw std::runtime_error(file + ": npy header has no " + key);
  at = header.find(':', at) + 1;
  while (header[at] == ' ') ++at;
  size_t end = header[at] == '(' ? header.find(')', at) + 1 : header.find_first_of(",}", at);
  return header.substr(at, end - at);
}

NpyArray ReadNpy(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file + ": cannot open");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) {
    throw std::runtime_error(file + ": not a .npy file");
  }
  int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, header_at;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
    header_at = 10;
  } else {
    uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    header_at = 12;
  }
  std::string header(bytes.data() + header_at, header_len);
  NpyArray array;
  std::string descr = HeaderField(header, "descr", file);
  array.dtype = DTypeFromDescr(descr.substr(1, descr.size() - 2), file);
  if (HeaderField(header, "fortran_order", file) != "False") {
    throw std::runtime_error(file + ": Fortran-order arrays are not supported");
  }
  std::string shape = HeaderField(header, "shape", file);
  std::stringstream dims(shape.substr(1, shape.size() - 2));
  for (std::string dim; std::getline(dims, dim, ',');) {
    if (dim.find_first_not_of(' ') != std::string::npos) array.shape.push_back(std::stoll(dim));
  }
  int64_t count = std::accumulate(array.shape.begin(), array.shape.end(), int64_t{1},
                                  std::multiplies<int64_t>());
  size_t nbytes = static_cast<size_t>(count) * array.dtype.bits / 8;
  size_t data_at = header_at + header_len;
  if (bytes.size() - data_at != nbytes) {
    throw std::runtime_error(file + ": data size does not match its shape");
  }
  array.data.assign(bytes.begin() + data_at, bytes.end());
  return array;
}

void WriteNpy(const std::string& file, const ffi::Tensor& tensor) {
  std::string shape = "(";
  for (int i = 0; i < tensor.ndim(); ++i) {
    shape += std::to_string(tensor.size(i)) + (tensor.ndim() == 1 || i + 1 < tensor.ndim() ? "," : "");
    if (i + 1 < tensor.ndim()) shape += " ";
  }
  shape += ")";
  std::string header = "{'descr': '" + DescrFromDType(tensor.dtype()) +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // numpy pads the header with spaces so the data starts at a multiple of 64 bytes.
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  const DLTensor* dl = tensor.GetDLTensorPtr();
  if (dl->device.device_type != kDLCPU || !tensor.IsContiguous()) {
    throw std::runtime_error(file + ": output is not a contiguous CPU tensor");
  }
  std::vector<char> data(ffi::GetDataSize(*dl));
  std::memcpy(data.data(), static_cast<char*>(dl->data) + dl->byte_offset, data.size());
  std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    uint16_t len = static_cast<uint16_t>(header.size());
    out.write("\x93NUMPY\x01\x00", 8);
    out.put(static_cast<char>(len & 0xff)).put(static_cast<char>(len >> 8));
    out << header;
    out.write(data.data(), data.size());
    if (!out) throw std::runtime_error(file + ": cannot write");
  }
  if (std::rename(tmp.c_str(), file.c_str()) != 0) throw std::runtime_error(file + ": cannot write");
}

std::vector<ffi::Tensor> Outputs(const ffi::Any& result) {
  if (auto tensor = result.as<ffi::Tensor>()) return {*tensor};
  std::vector<ffi::Tensor> outputs;
  for (const ffi::Any& item : result.cast<ffi::Array<ffi::Any>>()) {
    outputs.push_back(item.cast<ffi::Tensor>());
  }
  return outputs;
}

int Run(int argc, char** argv) {
  std::string library, out_dir = ".";
  std::vector<std::string> input_files;
  int repeat = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (arg == "--repeat" && i + 1 < argc) {
      repeat = std::stoi(argv[++i]);
    } else if (arg.rfind("--", 0) == 0) {
      throw std::runtime_error("unknown option " + arg);
    } else if (library.empty()) {
      library = arg;
    } else {
      input_files.push_back(arg);
    }
  }
  if (library.empty()) {
    throw std::runtime_error("usage: tvm_prune_run mod.so INPUT.npy... [--out DIR] [--repeat N]");
  }

  // dlopen searches the library path for a bare file name; the user means this folder.
  if (library.find('/') == std::string::npos) library = "./" + library;
  ffi::Module executable = ffi::Module::LoadFromFile(library);
  ffi::Module vm = executable->GetFunction("vm_load_executable").value()().cast<ffi::Module>();
  constexpr int kPooledAllocator = 2;
  vm->GetFunction("vm_initialization").value()(static_cast<int>(kDLCPU), 0, kPooledAllocator);
  ffi::Function main_fn = vm->GetFunction("main").value();
  int64_t arity = vm->GetFunction("get_function_arity").value()("main").cast<int64_t>();
  if (arity != static_cast<int64_t>(input_files.size())) {
    throw std::runtime_error("the model takes " + std::to_string(arity) + " input(s), " +
                             std::to_string(input_files.size()) + " given");
  }

  std::vector<ffi::Tensor> inputs;
  for (const std::string& file : input_files) {
    NpyArray array = ReadNpy(file);
    ffi::Tensor tensor = ffi::Tensor::FromNDAlloc(AlignedCpuAlloc(), ffi::Shape(array.shape),
                                                  array.dtype, DLDevice{kDLCPU, 0});
    std::memcpy(tensor.data_ptr(), array.data.data(), array.data.size());
    inputs.push_back(tensor);
  }
  std::vector<ffi::AnyView> args(inputs.begin(), inputs.end());
  auto invoke = [&]() {
    ffi::Any result;
    main_fn.CallPacked(args.data(), static_cast<int32_t>(args.size()), &result);
    return result;
  };

  std::vector<ffi::Tensor> outputs = Outputs(invoke());
  for (size_t i = 0; i < outputs.size(); ++i) {
    std::string file = out_dir + "/output_" + std::to_string(i) + ".npy";
    WriteNpy(file, outputs[i]);
    std::printf("output %zu: shape [", i);
    for (int d = 0; d < outputs[i].ndim(); ++d) {
      std::printf(d ? ", %lld" : "%lld", static_cast<long long>(outputs[i].size(d)));
    }
    std::printf("] -> %s\n", file.c_str());
  }
  if (repeat > 0) {
    std::vector<double> ms;
    for (int r = 0; r < repeat; ++r) {
      auto start = std::chrono::steady_clock::now();
      invoke();
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
    double median = sorted.size() % 2 ? sorted[sorted.size() / 2]
                                      : (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]) / 2;
    std::printf("time_ms mean=%.4f median=%.4f min=%.4f max=%.4f runs=%d\n", mean, median,
                sorted.front(), sorted.back(), repeat);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    std::string message = error.what();
    std::fprintf(stderr, "tvm_prune_run: error: %s\n",
                 message.substr(0, message.find('\n')).c_str());
    return 1;
  }
}
