/* SPDX-License-Identifier: Apache-2.0 */
/* ts_embedded.h — files compiled into the binaries.
 *
 * The build (cmake/Embed.cmake) turns the files of schemas/ and sql/ into the
 * two tables below, sorted by file name and ended by an entry whose name is
 * NULL. The data are NUL-terminated. (The API's OpenAPI document is a table
 * of the same kind, in the API's library alone: producer-api/core/openapi.h.) */
#ifndef TS_EMBEDDED_H
#define TS_EMBEDDED_H

#include <stddef.h>
#include <string.h>

typedef struct ts_embedded {
    const char *name;
    const char *data;
    size_t len;
} ts_embedded;

extern const ts_embedded ts_embedded_schemas[];
extern const ts_embedded ts_embedded_migrations[];

/* The entry of `table` named `name`, or NULL. */
static inline const ts_embedded *ts_embedded_find(const ts_embedded *table, const char *name) {
    for (const ts_embedded *e = table; e->name; e++)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

#endif
