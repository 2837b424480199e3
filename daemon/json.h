/* json: a small read-only JSON document tree, for configuration files and tools.
 *
 * Built with yajl's callback parser (yajl's own tree API leaks on some error paths).
 * Numbers keep their literal text, so callers decide what an integer is ("60.0" is not)
 * and read decimals without a detour through double. Objects keep their members in
 * document order, duplicates included (each flagged), so a caller can report a duplicate
 * key instead of silently taking one of the values. Every node and member key remembers
 * its 1-based line and byte column so errors can point into the file.
 *
 * The whole tree is owned by the root returned from json_parse and dies with json_free.
 * Accessors are NULL/0-safe: asking a node of the wrong kind returns NULL, 0 or false. */
#ifndef KPI_JSON_H
#define KPI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum json_kind { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

typedef struct json_node json_node_t;

/* Containers nested deeper than this are a parse error (keeps recursion in callers safe). */
#define JSON_MAX_DEPTH 128

/* Parses exactly one JSON value (surrounding whitespace allowed; "//" and block comments
 * too when allow_comments). Returns the root, or NULL with "line L, column C: reason"
 * in err. text need not be NUL-terminated. */
json_node_t *json_parse(const char *text, size_t len, bool allow_comments, char *err,
                        size_t errlen);
/* Frees a tree returned by json_parse (never call it on an inner node). NULL is fine. */
void json_free(json_node_t *root);

enum json_kind json_kind(const json_node_t *node);
const char *json_kind_name(enum json_kind kind); /* "null", "boolean", "number", ... */
int json_line(const json_node_t *node);   /* 1-based; 0 for NULL */
int json_column(const json_node_t *node); /* 1-based byte column; 0 for NULL */

bool json_bool(const json_node_t *node);
/* NUL-terminated; *len (optional) is the decoded length, which exceeds strlen() when
 * the string holds an escaped \u0000. */
const char *json_string(const json_node_t *node, size_t *len);
const char *json_number_literal(const json_node_t *node);
/* 0 and *out for an integer literal (no fraction, no exponent) within int64;
 * -1 when the node is not an integer literal; -2 when it is one but out of int64 range. */
int json_number_int64(const json_node_t *node, int64_t *out);
/* 0 and *out for any number node (strtod in the C locale); -1 otherwise. */
int json_number_double(const json_node_t *node, double *out);

size_t json_array_len(const json_node_t *node);
const json_node_t *json_array_at(const json_node_t *node, size_t i);

size_t json_object_len(const json_node_t *node);
const char *json_object_key_at(const json_node_t *node, size_t i, size_t *key_len);
const json_node_t *json_object_value_at(const json_node_t *node, size_t i);
/* True when an earlier member of the object has the same key. */
bool json_object_key_is_dup(const json_node_t *node, size_t i);
void json_object_key_position(const json_node_t *node, size_t i, int *line, int *column);
/* The first member named key (keys with an embedded NUL never match); NULL if none. */
const json_node_t *json_object_get(const json_node_t *node, const char *key);

#endif
