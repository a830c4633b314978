/* spec.c - what an address spec names: replicas, and tables routed to them.
 *
 *   tcp:h1:7070                          one daemon (a plain connection)
 *   tcp:h1:7070,tcp:h2:7070              replicas of the same tables
 *   layer1=tcp:h1:7070,tcp:h2:7070;layer14=tcp:h3:7070;unix:/run/e.sock
 *                                        tables routed to replicas; the
 *                                        group without names serves the rest
 *   @/etc/engram/routes.json             the same as a JSON file:
 *       {"tables": {"layer1": ["tcp:h1:7070", "tcp:h2:7070"], ...},
 *        "default": ["unix:/run/e.sock"]}
 *
 * A ',' or ';' separates only where an address (unix:, tcp:) or, after ';',
 * "NAMES=" follows, so every single address that worked before still parses
 * as itself. Table names in a spec hold no ':', ';' or '='. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egc_fleet.h"

static int starts_addr(const char *p)
{
	return strncmp(p, "unix:", 5) == 0 || strncmp(p, "tcp:", 4) == 0;
}

/* Length of a "NAMES=" head at p, '=' included, or 0. */
static size_t names_head(const char *p)
{
	size_t i;

	if (starts_addr(p))
		return 0;
	for (i = 0; p[i] && p[i] != '='; i++)
		if (p[i] == ':' || p[i] == ';')
			return 0;
	return p[i] == '=' && i > 0 ? i + 1 : 0;
}

/* Length of the address at p: up to a ',' before another address or a ';'
 * before an address or a group. */
static size_t addr_len(const char *p)
{
	size_t i;

	for (i = 0; p[i]; i++) {
		if ((p[i] == ',' || p[i] == ';') && starts_addr(p + i + 1))
			break;
		if (p[i] == ';' && names_head(p + i + 1))
			break;
	}
	return i;
}

static int bad(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return EGC_EADDR;
}

/* Appends a copy of s[0..n) to *v (of *nv). */
static int push(char ***v, size_t *nv, const char *s, size_t n)
{
	char **grown = realloc(*v, (*nv + 1) * sizeof(**v));

	if (!grown)
		return -ENOMEM;
	*v = grown;
	grown[*nv] = strndup(s, n);
	if (!grown[*nv])
		return -ENOMEM;
	(*nv)++;
	return 0;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void egc__spec_group_free(struct egc_spec_group *g)
{
	free_strv(g->tables, g->ntables);
	free_strv(g->addrs, g->naddrs);
	memset(g, 0, sizeof(*g));
}

void egc__spec_free(struct egc_spec *s)
{
	for (size_t i = 0; i < s->ngroups; i++)
		egc__spec_group_free(&s->groups[i]);
	free(s->groups);
	s->groups = NULL;
	s->ngroups = 0;
}

static struct egc_spec_group *new_group(struct egc_spec *s)
{
	struct egc_spec_group *g = realloc(s->groups, (s->ngroups + 1) * sizeof(*g));

	if (!g)
		return NULL;
	s->groups = g;
	g = &s->groups[s->ngroups++];
	memset(g, 0, sizeof(*g));
	return g;
}

/* NAMES of a "NAMES=" head of len bytes (without the '='). */
static int parse_names(struct egc_spec_group *g, const char *p, size_t len, char *why,
                       size_t wl)
{
	for (;;) {
		const char *comma = memchr(p, ',', len);
		size_t n = comma ? (size_t)(comma - p) : len;
		int err;

		if (n == 0)
			return bad(why, wl, "an empty table name before '='");
		if ((err = push(&g->tables, &g->ntables, p, n)) < 0)
			return err;
		if (!comma)
			return 0;
		p += n + 1;
		len -= n + 1;
	}
}

/* Addresses at *p (a list separated by ','); *p moves past them. */
static int parse_addrs(struct egc_spec_group *g, const char **p, char *why, size_t wl)
{
	for (;;) {
		size_t n;
		int err;

		if (!starts_addr(*p))
			return bad(why, wl, "expected unix:PATH or tcp:HOST:PORT at '%.40s'", *p);
		n = addr_len(*p);
		if ((err = push(&g->addrs, &g->naddrs, *p, n)) < 0)
			return err;
		*p += n;
		if (**p != ',')
			return 0;
		(*p)++;
	}
}

static int parse_string(const char *p, struct egc_spec *s, char *why, size_t wl)
{
	for (;;) {
		struct egc_spec_group *g = new_group(s);
		size_t head = names_head(p);
		int err;

		if (!g)
			return -ENOMEM;
		if (head) {
			if ((err = parse_names(g, p, head - 1, why, wl)) < 0)
				return err;
			p += head;
		} else {
			g->dflt = 1;
		}
		if ((err = parse_addrs(g, &p, why, wl)) < 0)
			return err;
		if (*p == '\0')
			return 0;
		p++; /* a ';' (addr_len stops at nothing else) */
	}
}

/* A JSON value naming replicas: an array of addresses, or one string. */
static int json_addrs(struct egc_spec_group *g, const json_t *v, const char *what, char *why,
                      size_t wl)
{
	const char *p;
	size_t i;
	json_t *a;
	int err;

	if (json_is_string(v)) {
		p = json_string_value(v);
		err = parse_addrs(g, &p, why, wl);
		return err < 0 ? err : *p ? bad(why, wl, "%s: unexpected '%.40s'", what, p) : 0;
	}
	if (!json_is_array(v) || json_array_size(v) == 0)
		return bad(why, wl, "%s: want a list of addresses", what);
	json_array_foreach(v, i, a) {
		if (!json_is_string(a) || !starts_addr(json_string_value(a)))
			return bad(why, wl, "%s[%zu]: want unix:PATH or tcp:HOST:PORT", what, i);
		if ((err = push(&g->addrs, &g->naddrs, json_string_value(a),
		                strlen(json_string_value(a)))) < 0)
			return err;
	}
	return 0;
}

static int parse_json(const json_t *root, struct egc_spec *s, char *why, size_t wl)
{
	const char *key, *name;
	json_t *v, *addrs;
	int err;

	if (!json_is_object(root))
		return bad(why, wl, "want an object with \"tables\" and/or \"default\"");
	json_object_foreach((json_t *)root, key, v) {
		struct egc_spec_group *g;

		if (strcmp(key, "default") == 0) {
			if (!(g = new_group(s)))
				return -ENOMEM;
			g->dflt = 1;
			if ((err = json_addrs(g, v, "default", why, wl)) < 0)
				return err;
			continue;
		}
		if (strcmp(key, "tables") != 0 || !json_is_object(v))
			return bad(why, wl, "unknown key \"%s\" (want \"tables\": {...}, \"default\")", key);
		json_object_foreach(v, name, addrs) {
			if (!(g = new_group(s)))
				return -ENOMEM;
			if (!*name)
				return bad(why, wl, "an empty table name");
			if ((err = push(&g->tables, &g->ntables, name, strlen(name))) < 0)
				return err;
			if ((err = json_addrs(g, addrs, name, why, wl)) < 0)
				return err;
		}
	}
	return 0;
}

static int same_addrs(const struct egc_spec_group *a, const struct egc_spec_group *b)
{
	if (a->naddrs != b->naddrs)
		return 0;
	for (size_t i = 0; i < a->naddrs; i++)
		if (strcmp(a->addrs[i], b->addrs[i]) != 0)
			return 0;
	return 1;
}

/* Merges groups of the same replicas (their tables go over one connection,
 * a token lookup over them in one request), then checks that no table is
 * routed twice and at most one group is the default. */
static int merge(struct egc_spec *s, char *why, size_t wl)
{
	size_t i, j, k, l, dflt = 0;

	for (i = 0; i < s->ngroups; i++) {
		for (j = i + 1; j < s->ngroups; j++) {
			struct egc_spec_group *a = &s->groups[i], *b = &s->groups[j];

			if (!same_addrs(a, b))
				continue;
			for (k = 0; k < b->ntables; k++)
				if (push(&a->tables, &a->ntables, b->tables[k], strlen(b->tables[k])) < 0)
					return -ENOMEM;
			a->dflt |= b->dflt;
			egc__spec_group_free(b);
			memmove(b, b + 1, (s->ngroups - j - 1) * sizeof(*b));
			s->ngroups--;
			j--;
		}
	}
	for (i = 0; i < s->ngroups; i++) {
		dflt += (size_t)s->groups[i].dflt;
		for (k = 0; k < s->groups[i].ntables; k++)
			for (j = i; j < s->ngroups; j++)
				for (l = j == i ? k + 1 : 0; l < s->groups[j].ntables; l++)
					if (strcmp(s->groups[i].tables[k], s->groups[j].tables[l]) == 0)
						return bad(why, wl, "table '%s' is routed twice",
						           s->groups[i].tables[k]);
	}
	return dflt > 1 ? bad(why, wl, "more than one group without table names") : 0;
}

int egc__spec_parse(const char *spec, struct egc_spec *out, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *root;
	int err;

	memset(out, 0, sizeof(*out));
	if (spec[0] == '@') {
		root = json_load_file(spec + 1, JSON_REJECT_DUPLICATES, &jerr);
		if (!root && jerr.line > 0)
			return bad(why, whylen, "routes file %s: line %d: %s", spec + 1, jerr.line,
			           jerr.text);
		if (!root)
			return bad(why, whylen, "routes file %s: %s", spec + 1, jerr.text);
		err = parse_json(root, out, why, whylen);
		json_decref(root);
	} else {
		err = parse_string(spec, out, why, whylen);
	}
	if (err == 0 && out->ngroups == 0)
		err = bad(why, whylen, "names no daemon");
	if (err == 0)
		err = merge(out, why, whylen);
	if (err < 0) {
		if (err == -ENOMEM)
			snprintf(why, whylen, "out of memory");
		egc__spec_free(out);
	}
	return err;
}

int egc__spec_is_fleet(const char *spec)
{
	struct egc_spec s;
	char why[8];
	int fleet;

	if (spec[0] == '@')
		return 1;
	if (egc__spec_parse(spec, &s, why, sizeof(why)) < 0)
		return 0; /* a plain connection then says what is wrong */
	fleet = s.ngroups != 1 || s.groups[0].ntables || s.groups[0].naddrs != 1;
	egc__spec_free(&s);
	return fleet;
}

int eg_client_check_spec(const char *spec, char *why, size_t whylen)
{
	struct egc_spec s;
	char dummy[8];
	int err;

	if (!spec)
		return -EINVAL;
	if (!why || !whylen) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = '\0';
	err = egc__spec_parse(spec, &s, why, whylen);
	if (err == 0)
		egc__spec_free(&s);
	return err;
}
