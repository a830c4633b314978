/* libFuzzer harness: hash spec JSON parsing and hashing with whatever spec
 * parses. The input is the spec text; tokens are derived from its bytes. */
// fuzz-sources: storage/*.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "eg_hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json = malloc(size + 1);
	eg_hash *h = NULL;
	char err[256];

	if (json == NULL)
		return 0;
	memcpy(json, data, size);
	json[size] = '\0';
	if (eg_hash_parse(json, NULL, &h, err, sizeof(err)) == 0) {
		int64_t tokens[8];
		uint32_t lens[2] = {3, 5};
		uint32_t ctx[2] = {1, 0};
		uint64_t *slots;
		size_t bad;

		for (size_t i = 0; i < 8; i++)
			tokens[i] = size > i ? (int64_t)data[i] * 977 - 3000 : (int64_t)i;
		slots = calloc((size_t)7 * eg_hash_rows_per_token(h) + 1, sizeof(*slots));
		if (slots != NULL) {
			if (eg_hash_slots(h, tokens, lens, ctx, 2, slots, &bad) == 0) {
				uint64_t total = eg_hash_table_slots(h);
				for (size_t i = 0; i < (size_t)7 * eg_hash_rows_per_token(h); i++)
					if (slots[i] >= total)
						abort(); /* a slot outside the table */
			}
			free(slots);
		}
		free(eg_hash_to_json(h));
		eg_hash_free(h);
	}
	free(json);
	return 0;
}
