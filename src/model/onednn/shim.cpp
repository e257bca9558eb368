// The two oneDNN operators rlmec calls that libtorch registers (in the `mkldnn` namespace)
// but tch does not bind: weight prepacking and the linear product on a prepacked weight.
// They are reached through torch's dispatcher with boxed calls, so no C++ signature of
// libtorch's is restated here. Every function catches C++ exceptions and returns the
// message (to free with rlmec_free_error), or null on success.

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/ivalue.h>
#include <ATen/core/stack.h>
#include <c10/core/GradMode.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>

namespace {

template <typename F>
char* guarded(F body) {
  try {
    body();
    return nullptr;
  } catch (const std::exception& e) {
    return strdup(e.what());
  } catch (...) {
    return strdup("unknown C++ exception");
  }
}

c10::OperatorHandle op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
}

}  // namespace

extern "C" {

void rlmec_free_error(char* error) { free(error); }

bool rlmec_grad_enabled() { return c10::GradMode::is_enabled(); }

// The in-place modification count of `t` (the optimiser's steps and loads bump it).
char* rlmec_tensor_version(const at::Tensor* t, int64_t* out) {
  return guarded([&] { *out = static_cast<int64_t>(t->_version()); });
}

// mkldnn::_reorder_linear_weight(weight [out, in], batch_size hint) -> packed weight.
char* rlmec_onednn_pack(const at::Tensor* weight, int64_t batch_hint, at::Tensor** out) {
  return guarded([&] {
    static const c10::OperatorHandle reorder = op("mkldnn::_reorder_linear_weight");
    torch::jit::Stack stack;
    stack.emplace_back(*weight);
    stack.emplace_back(batch_hint);
    reorder.callBoxed(&stack);
    *out = new at::Tensor(stack.at(0).toTensor());
  });
}

// mkldnn::_linear_pointwise(x [rows, in], packed, bias?, "none") -> [rows, out].
char* rlmec_onednn_linear(const at::Tensor* x, const at::Tensor* packed, const at::Tensor* bias,
                          at::Tensor** out) {
  return guarded([&] {
    static const c10::OperatorHandle linear = op("mkldnn::_linear_pointwise");
    torch::jit::Stack stack;
    stack.emplace_back(*x);
    stack.emplace_back(*packed);
    stack.emplace_back(bias ? c10::IValue(*bias) : c10::IValue());
    stack.emplace_back(std::string("none"));
    stack.emplace_back(c10::List<std::optional<at::Scalar>>());
    stack.emplace_back(c10::IValue());
    linear.callBoxed(&stack);
    *out = new at::Tensor(stack.at(0).toTensor());
  });
}

}  // extern "C"
