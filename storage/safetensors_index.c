/* safetensors_index.c - which file of a checkpoint holds a tensor: the
 * file itself, the shard an index's weight_map names, or what a directory
 * holds (see eg_st_locate in eg_safetensors.h). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eg_safetensors.h"
#include "eg_table.h"
#include "safetensors_int.h"
#include "table_int.h"

#define INDEX_NAME "model.safetensors.index.json"

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A shard name an index may use: a file next to it, nothing else. */
static int plain_name(const char *s)
{
	return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* The shard of tensor named by the index at path. */
static int from_index(const char *path, const char *tensor, char **out, char *err,
                      size_t errlen)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *map, *v;
	const char *slash = strrchr(path, '/'), *name;
	char *dir;
	int rc = 0;

	if (!root) {
		if (access(path, R_OK) != 0)
			return -errno;
		return eg__st_fail(err, errlen, "not a JSON index: %s (line %d)", jerr.text, jerr.line);
	}
	map = json_object_get(root, "weight_map");
	if (!json_is_object(map)) {
		rc = eg__st_fail(err, errlen, "the index has no weight_map object");
		goto out;
	}
	v = json_object_get(map, tensor);
	if (!v) {
		rc = eg__st_fail(err, errlen, "tensor '%s' is not in the index's weight_map "
		                 "(%zu tensors)", tensor, json_object_size(map));
		goto out;
	}
	name = json_string_value(v);
	if (!name || !plain_name(name)) {
		rc = eg__st_fail(err, errlen, "weight_map names '%s' for tensor '%s': want the name "
		                 "of a file next to the index", name ? name : "(not a string)", tensor);
		goto out;
	}
	if (!slash) {
		*out = strdup(name);
	} else if ((dir = strndup(path, (size_t)(slash - path)))) {
		*out = eg__join(dir, name);
		free(dir);
	}
	if (!*out)
		rc = -ENOMEM;
out:
	json_decref(root);
	return rc;
}

/* The only .safetensors file in dir. */
static int only_file(const char *dir, char **out, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char *found = NULL;
	int n = 0, rc = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && ends_with(e->d_name, ".safetensors") && n++ == 0)
			found = strdup(e->d_name);
	closedir(d);
	if (n == 0)
		rc = eg__st_fail(err, errlen, "holds neither %s nor a .safetensors file", INDEX_NAME);
	else if (n > 1)
		rc = eg__st_fail(err, errlen, "holds %d .safetensors files and no %s: name the file",
		                 n, INDEX_NAME);
	else if (!found || !(*out = eg__join(dir, found)))
		rc = -ENOMEM;
	free(found);
	return rc;
}

int eg_st_locate(const char *ckpt, const char *tensor, char **path, char *err, size_t errlen)
{
	struct stat sb;
	char *index;
	int rc;

	*path = NULL;
	if (stat(ckpt, &sb) != 0)
		return -errno;
	if (!S_ISDIR(sb.st_mode)) {
		if (ends_with(ckpt, ".json"))
			return from_index(ckpt, tensor, path, err, errlen);
		*path = strdup(ckpt);
		return *path ? 0 : -ENOMEM;
	}
	index = eg__join(ckpt, INDEX_NAME);
	if (!index)
		return -ENOMEM;
	if (stat(index, &sb) == 0)
		rc = from_index(index, tensor, path, err, errlen);
	else
		rc = only_file(ckpt, path, err, errlen);
	free(index);
	return rc;
}
