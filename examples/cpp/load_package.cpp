// Loads an archive written by trtshim's compat.save(compat.compile(..., backend="inductor"), path) with
// libtorch's own AOTIModelPackageLoader and runs it: the file is torch's PT2 package, nothing of trtshim
// is needed in C++. Reads the inputs from a file of raw float32 tensors and writes the outputs likewise.
//
// usage: load_package ARCHIVE INPUTS OUTPUTS [cpu|cuda]
//   INPUTS / OUTPUTS: uint32 count, then per tensor: uint32 rank, int64 sizes[rank], float32 data.
//   cuda: the inputs go to the GPU (a package compiled for CUDA), the outputs come back to the CPU.
#include <ATen/ATen.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

std::vector<at::Tensor> read_tensors(const char* path) {
  std::ifstream in(path, std::ios::binary);
  uint32_t count = 0;
  in.read(reinterpret_cast<char*>(&count), sizeof(count));
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t rank = 0;
    in.read(reinterpret_cast<char*>(&rank), sizeof(rank));
    std::vector<int64_t> sizes(rank);
    in.read(reinterpret_cast<char*>(sizes.data()), rank * sizeof(int64_t));
    at::Tensor t = at::empty(sizes, at::kFloat);
    in.read(reinterpret_cast<char*>(t.data_ptr<float>()), t.numel() * sizeof(float));
    out.push_back(t);
  }
  if (!in) throw std::runtime_error("could not read the inputs");
  return out;
}

void write_tensors(const char* path, const std::vector<at::Tensor>& tensors) {
  std::ofstream out(path, std::ios::binary);
  uint32_t count = tensors.size();
  out.write(reinterpret_cast<const char*>(&count), sizeof(count));
  for (const auto& tensor : tensors) {
    at::Tensor t = tensor.to(at::kFloat).contiguous();
    uint32_t rank = t.dim();
    out.write(reinterpret_cast<const char*>(&rank), sizeof(rank));
    out.write(reinterpret_cast<const char*>(t.sizes().data()), rank * sizeof(int64_t));
    out.write(reinterpret_cast<const char*>(t.data_ptr<float>()), t.numel() * sizeof(float));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::cerr << "usage: load_package ARCHIVE INPUTS OUTPUTS [cpu|cuda]\n";
    return 2;
  }
  const bool cuda = argc == 5 && std::string(argv[4]) == "cuda";
  torch::inductor::AOTIModelPackageLoader loader(argv[1]);
  std::vector<at::Tensor> inputs = read_tensors(argv[2]);
  if (cuda) {
    for (auto& t : inputs) t = t.to(at::kCUDA);
  }
  std::vector<at::Tensor> outputs = loader.run(inputs);
  for (auto& t : outputs) t = t.to(at::kCPU);
  write_tensors(argv[3], outputs);
  std::cout << "ran " << argv[1] << ": " << outputs.size() << " output(s), first of shape " << outputs[0].sizes()
            << "\n";
  return 0;
}
