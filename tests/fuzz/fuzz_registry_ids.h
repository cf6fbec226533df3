/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_registry_ids.h — the registry schema ids fuzz_codec's codec knows,
 * shared with gen_seeds (which writes registry-framed seeds with them). */
#ifndef FUZZ_REGISTRY_IDS_H
#define FUZZ_REGISTRY_IDS_H

#include <stdio.h>
#include <string.h>

#include "ts_codec.h"
#include "ts_embedded.h"

/* The current schemas, by id: id = index + 1. */
static const char *const fuzz_registry_files[] = {
    "create_event.avsc", "register.avsc",     "cancel.avsc",      "place_hold.avsc",
    "confirm_hold.avsc", "release_hold.avsc", "expire_hold.avsc", "update_event.avsc",
    "cancel_event.avsc", "reply.avsc",        "change.avsc",
};
#define FUZZ_REGISTRY_NFILES (sizeof fuzz_registry_files / sizeof fuzz_registry_files[0])

/* Register with a field added at its end (a newer producer's), and without
 * its last, defaulted field (an older producer's): both resolved. */
#define FUZZ_ID_REGISTER_NEWER 100
#define FUZZ_ID_REGISTER_OLDER 101

static const char fuzz_register_newer[] =
    "{\"type\":\"record\",\"name\":\"Register\",\"namespace\":\"turnstile.command\",\"fields\":["
    "{\"name\":\"command_id\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
    "{\"name\":\"issued_at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"reply_to\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"ReplyTo\","
    "\"fields\":[{\"name\":\"topic\",\"type\":\"string\"},{\"name\":\"partition\",\"type\":"
    "\"int\"}]}],\"default\":null},"
    "{\"name\":\"event_id\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
    "{\"name\":\"name\",\"type\":\"string\"},{\"name\":\"email\",\"type\":\"string\"},"
    "{\"name\":\"request_sha256\",\"type\":[\"null\",\"bytes\"],\"default\":null},"
    "{\"name\":\"cancel_token_sha256\",\"type\":[\"null\",\"bytes\"],\"default\":null},"
    "{\"name\":\"waitlist\",\"type\":\"boolean\",\"default\":false},"
    "{\"name\":\"referrer\",\"type\":[\"null\",\"string\"],\"default\":null}]}";

static const char fuzz_register_older[] =
    "{\"type\":\"record\",\"name\":\"Register\",\"namespace\":\"turnstile.command\",\"fields\":["
    "{\"name\":\"command_id\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
    "{\"name\":\"issued_at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"reply_to\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"ReplyTo\","
    "\"fields\":[{\"name\":\"topic\",\"type\":\"string\"},{\"name\":\"partition\",\"type\":"
    "\"int\"}]}],\"default\":null},"
    "{\"name\":\"event_id\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
    "{\"name\":\"name\",\"type\":\"string\"},{\"name\":\"email\",\"type\":\"string\"},"
    "{\"name\":\"request_sha256\",\"type\":[\"null\",\"bytes\"],\"default\":null},"
    "{\"name\":\"cancel_token_sha256\",\"type\":[\"null\",\"bytes\"],\"default\":null}]}";

static inline const char *fuzz_schema_text(const char *file) {
    const ts_embedded *e = ts_embedded_find(ts_embedded_schemas, file);
    return e ? e->data : NULL;
}

/* Teaches the codec every id above. 0, or -1 with err set. */
static inline int fuzz_learn_registry_ids(ts_codec *codec, char *err, size_t errlen) {
    for (size_t i = 0; i < FUZZ_REGISTRY_NFILES; i++) {
        const char *text = fuzz_schema_text(fuzz_registry_files[i]);
        if (!text || ts_codec_learn_schema(codec, (int32_t)i + 1, text, err, errlen) != TS_CODEC_OK)
            return -1;
    }
    if (ts_codec_learn_schema(codec, FUZZ_ID_REGISTER_NEWER, fuzz_register_newer, err, errlen) ||
        ts_codec_learn_schema(codec, FUZZ_ID_REGISTER_OLDER, fuzz_register_older, err, errlen))
        return -1;
    return 0;
}

#endif
