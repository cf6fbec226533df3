/* SPDX-License-Identifier: Apache-2.0 */
/* openapi.h — the API's OpenAPI 3.1 document (producer-api/openapi.json),
 * compiled into the binary by the build (cmake/Embed.cmake) and served at
 * GET /openapi.json: the document a binary serves is the one it was built
 * with, and needs no file beside it. Pure; thread-safe. */
#ifndef TS_OPENAPI_H
#define TS_OPENAPI_H

#include <stddef.h>

/* The document's JSON text, NUL-terminated, its length in *len. Static:
 * never freed. */
const char *ts_openapi_document(size_t *len);

#endif
