/* SPDX-License-Identifier: Apache-2.0 */
/* openapi.c — see openapi.h. */
#include "openapi.h"

#include <string.h>

#include "ts_embedded.h"

/* The build's table of the API's documents (ts_embedded_api.c). */
extern const ts_embedded ts_embedded_api_documents[];

const char *ts_openapi_document(size_t *len) {
    const ts_embedded *e = ts_embedded_find(ts_embedded_api_documents, "openapi.json");
    *len = e ? e->len : 0; /* the build always embeds it */
    return e ? e->data : "";
}
