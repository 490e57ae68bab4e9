# Every dependency comes from Debian packages (.ci/run installs them) or PyPI header packages.
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SPNG REQUIRED IMPORTED_TARGET spng)
pkg_check_modules(LIBZIP REQUIRED IMPORTED_TARGET libzip)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
if(NOT CBLAS_INCLUDE_DIR)
  find_path(CBLAS_INCLUDE_DIR cblas.h PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas REQUIRED)
endif()
if(SPARVAR_TESTS)
  find_package(GTest REQUIRED)
endif()

if(SPARVAR_CUDA)
  # CUTLASS/CuTe headers from PyPI nvidia-cutlass, cuDNN frontend headers from PyPI nvidia-cudnn-frontend.
  # Both can be given directly (-DCUTLASS_INCLUDE_DIR=..., -DCUDNN_FE_INCLUDE_DIR=...), as on the GPU machine.
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  if(NOT CUTLASS_INCLUDE_DIR)
    execute_process(
      COMMAND ${Python3_EXECUTABLE} -c "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))"
      OUTPUT_VARIABLE CUTLASS_INCLUDE_DIR OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  if(NOT EXISTS "${CUTLASS_INCLUDE_DIR}/cute/tensor.hpp")
    message(FATAL_ERROR "CUTLASS headers not found: pip install --no-deps nvidia-cutlass==4.2.0.0")
  endif()
  if(NOT CUDNN_FE_INCLUDE_DIR)
    execute_process(
      COMMAND ${Python3_EXECUTABLE} -c "import sysconfig, os; print(os.path.join(sysconfig.get_paths()['purelib'], 'include'))"
      OUTPUT_VARIABLE CUDNN_FE_INCLUDE_DIR OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
  if(NOT EXISTS "${CUDNN_FE_INCLUDE_DIR}/cudnn_frontend.h")
    message(FATAL_ERROR "cuDNN frontend headers not found: pip install --no-deps nvidia-cudnn-frontend")
  endif()
  # cuDNN 9 itself (conv2d and attention, src/backend/cuda/cudnn_runner.cpp): in the CUDA toolkit's folders here and
  # on the GPU machine; else give -DCUDNN_INCLUDE_DIR=... -DCUDNN_LIBRARY=.../libcudnn.so (e.g. PyPI nvidia-cudnn-cu13's
  # nvidia/cudnn/{include,lib}).
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))"
    OUTPUT_VARIABLE _sparvar_pip_cudnn OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${_sparvar_pip_cudnn}/include)
  find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${CUDAToolkit_LIBRARY_DIR} ${_sparvar_pip_cudnn}/lib
               PATH_SUFFIXES lib lib64)
  if(NOT CUDNN_INCLUDE_DIR OR NOT CUDNN_LIBRARY)
    message(FATAL_ERROR "cuDNN 9 not found (cudnn.h: ${CUDNN_INCLUDE_DIR}, libcudnn: ${CUDNN_LIBRARY}): "
                        "give -DCUDNN_INCLUDE_DIR=... -DCUDNN_LIBRARY=...")
  endif()
  message(STATUS "CUTLASS: ${CUTLASS_INCLUDE_DIR}")
  message(STATUS "cuDNN: ${CUDNN_LIBRARY} (headers ${CUDNN_INCLUDE_DIR}); frontend: ${CUDNN_FE_INCLUDE_DIR}")
endif()
