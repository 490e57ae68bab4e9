#include "core/slice_copy.h"

namespace sparvar {

SliceCopy slice_copy_geometry(const Tensor& src, const Tensor& dst, int dim, int64_t offset, std::string_view op) {
  SPARVAR_CHECK(src.dtype() == dst.dtype(), "{}: source {} and destination {} differ in dtype", op, src.describe(),
                dst.describe());
  SPARVAR_CHECK(src.ndim() == dst.ndim() && dim >= 0 && dim < src.ndim(),
                "{}: source {} and destination {} need the same rank and a dimension {} in it", op,
                shape_string(src.shape()), shape_string(dst.shape()), dim);
  for (int i = 0; i < src.ndim(); ++i)
    SPARVAR_CHECK(i == dim || src.dim(i) == dst.dim(i),
                  "{}: source {} and destination {} differ in dimension {} (only dimension {} may differ)", op,
                  shape_string(src.shape()), shape_string(dst.shape()), i, dim);
  SPARVAR_CHECK(offset >= 0 && offset + src.dim(dim) <= dst.dim(dim),
                "{}: rows [{}, {}) of dimension {} do not fit the destination {}", op, offset, offset + src.dim(dim),
                dim, shape_string(dst.shape()));
  int64_t rows = 1, inner = 1;
  for (int i = 0; i < dim; ++i) rows *= src.dim(i);
  for (int i = dim + 1; i < src.ndim(); ++i) inner *= src.dim(i);
  const int64_t esize = static_cast<int64_t>(dtype_size(src.dtype()));
  return {rows, src.dim(dim) * inner * esize, dst.dim(dim) * inner * esize, offset * inner * esize};
}

}  // namespace sparvar
