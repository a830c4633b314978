/* floor.c - the lowest generation of each table a client accepts.
 *
 * A floor is sent as min_generation with every lookup of its table, so a
 * daemon that has not loaded that version yet answers UNAVAILABLE instead
 * of older rows; an answer that still carries an older generation (a daemon
 * that predates min_generation) is refused the same way by check.c. With
 * EGC_MONOTONIC every answer raises its tables' floors: once a client has
 * seen a version, it never gets an older one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "egc_int.h"

static struct egc_floor *find(const eg_client *c, const char *table)
{
	for (size_t i = 0; i < c->nfloors; i++)
		if (strcmp(c->floors[i].name, table) == 0)
			return &c->floors[i];
	return NULL;
}

uint64_t egc__floor(const eg_client *c, const char *table)
{
	const struct egc_floor *f = find(c, table);

	return f ? f->generation : 0;
}

/* Sets table's floor to generation (0 forgets it); -ENOMEM. */
static int set_floor(eg_client *c, const char *table, uint64_t generation)
{
	struct egc_floor *f = find(c, table), *grown;
	size_t cap;

	if (f) {
		f->generation = generation;
		return 0;
	}
	if (generation == 0)
		return 0;
	if (c->nfloors == c->floorcap) {
		cap = c->floorcap ? 2 * c->floorcap : 8;
		grown = realloc(c->floors, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		c->floors = grown;
		c->floorcap = cap;
	}
	f = &c->floors[c->nfloors];
	f->name = strdup(table);
	if (!f->name)
		return -ENOMEM;
	f->generation = generation;
	c->nfloors++;
	return 0;
}

int egc__floor_raise(eg_client *c, const char *table, uint64_t generation)
{
	return generation > egc__floor(c, table) ? set_floor(c, table, generation) : 0;
}

void egc__floor_learn(eg_client *c, const egc_ticket *t)
{
	if (!(c->flags & EGC_MONOTONIC) || t->kind != EGC_KIND_ROWS)
		return;
	/* out of memory only forgets a floor: answers stay correct, and a
	 * later answer tries again */
	for (size_t i = 0; i < t->nouts; i++)
		egc__floor_raise(c, t->outs[i].table, t->outs[i].rows.generation);
}

void egc__floor_free(eg_client *c)
{
	for (size_t i = 0; i < c->nfloors; i++)
		free(c->floors[i].name);
	free(c->floors);
	c->floors = NULL;
	c->nfloors = c->floorcap = 0;
}

int eg_client_set_min_generation(eg_client *c, const char *table, uint64_t generation)
{
	int err;

	if (!c)
		return -EINVAL;
	if (!table) {
		egc__set_msg(c, "eg_client_set_min_generation: NULL table");
		return -EINVAL;
	}
	err = set_floor(c, table, generation);
	if (err < 0)
		egc__set_msg(c, "out of memory");
	return err;
}

uint64_t eg_client_min_generation(const eg_client *c, const char *table)
{
	return c && table ? egc__floor(c, table) : 0;
}
