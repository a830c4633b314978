/* libFuzzer harness: the safetensors reader on any bytes as a whole file.
 * Whatever it accepts must place every tensor inside the data section,
 * sized as its dtype and shape say, without overlaps. */
// fuzz-sources: storage/*.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "eg_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *end = data + size, *prev_end = NULL;
	char err[256];
	eg_st *st;

	if (eg_st_load(data, size, &st, err, sizeof err) != 0)
		return 0;
	for (size_t i = 0; i < eg_st_count(st); i++) {
		const eg_st_tensor *t = eg_st_tensor_at(st, i);
		const unsigned char *p = eg_st_data(st, t);
		uint64_t elems = 1, bytes = t->end - t->begin;

		if (p < data || p > end || bytes > (uint64_t)(end - p))
			abort(); /* a tensor outside the file */
		for (int d = 0; d < t->ndim; d++)
			elems *= t->shape[d];
		if (eg_st_dtype_size(t->dtype) && elems * eg_st_dtype_size(t->dtype) != bytes)
			abort(); /* sized otherwise than dtype x shape */
		if (bytes && prev_end && p < prev_end)
			abort(); /* overlaps the one before */
		if (bytes)
			prev_end = p + bytes;
		if (eg_st_find(st, t->name) == NULL)
			abort();
		if (bytes)
			(void)(p[0] + p[bytes - 1]); /* readable */
	}
	(void)eg_st_metadata(st, "format");
	eg_st_close(st);
	return 0;
}
