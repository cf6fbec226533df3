/* SPDX-License-Identifier: Apache-2.0 */
/* openapi.c — see openapi.h. */
#include "openapi.h"

#include <string.h>

#include "ts_embedded.h"

/* The build's table of the API's documents (ts_embedded_api.c). */
extern const ts_embedded ts_embedded_api_documents[];

const char *ts_openapi_document(size_t *len) {
    for (const ts_embedded *e = ts_embedded_api_documents; e->name; e++)
        if (strcmp(e->name, "openapi.json") == 0) {
            *len = e->len;
            return e->data;
        }
    *len = 0; /* the build always embeds it: not reached */
    return "";
}
