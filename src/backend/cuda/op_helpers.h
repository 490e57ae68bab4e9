// Small host helpers shared by the op entry points (.cpp files).
#pragma once

#include "backend/backend.h"
#include "backend/cuda/kernels.h"

namespace sparvar::cuda {

inline KernelAct kernel_act(Activation act) {
  switch (act) {
    case Activation::GeluTanh: return KernelAct::GeluTanh;
    case Activation::Silu: return KernelAct::Silu;
    default: return KernelAct::None;
  }
}

}  // namespace sparvar::cuda
