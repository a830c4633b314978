/* libFuzzer harness: the .npy reader (eg_npy_parse, the checks eg_npy_open
 * runs on the mapped file) on any bytes, held in a heap copy of exactly the
 * input's size so that AddressSanitizer sees every byte read past it.
 * Whatever it accepts must describe a 1-D or 2-D array of a known dtype
 * whose bytes lie inside the input; they are all read. The seeds are small
 * files NumPy wrote (np.save) and one 3.0 header. */
// fuzz-sources: storage/*.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "eg_npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink; /* the rows' bytes are read, not optimized away */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *buf = malloc(size ? size : 1);
	const unsigned char *p;
	char err[256];
	eg_npy a;
	uint64_t bytes;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (eg_npy_parse(buf, size, &a, err, sizeof err) != 0) {
		if (!err[0])
			abort(); /* a refusal without a reason */
		free(buf);
		return 0;
	}
	if ((a.ndim != 1 && a.ndim != 2) || (a.ndim == 1 && a.cols != 1) ||
	    a.itemsize == 0 || a.itemsize != eg_npy_itemsize(a.type) || a.map)
		abort(); /* a shape, dtype or ownership the header does not allow */
	p = a.data;
	bytes = a.rows * a.cols * a.itemsize;
	if (p < buf || p > buf + size || bytes > (uint64_t)(buf + size - p))
		abort(); /* rows outside the input */
	for (uint64_t i = 0; i < bytes; i++)
		sink += p[i];
	eg_npy_close(&a);
	free(buf);
	return 0;
}
