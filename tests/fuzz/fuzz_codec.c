/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_codec.c — libFuzzer harness of the Avro codec (Kafka messages are
 * untrusted). The same input is decoded as a command, a reply and a change;
 * whatever decodes is encoded again (into the current schema version) and
 * decoded again, and must be stable: the second encoding equals the first.
 * A message the decoder accepts and the encoder refuses is a bug too.
 *
 * The codec has learned registry schema ids as a worker would (see
 * fuzz_registry_ids.h): each current schema by its own id, and two other
 * versions of Register that go through Avro schema resolution, so inputs
 * in the registry's framing (0x00, id, body) reach every decoding path. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_registry_ids.h"
#include "ts_codec.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One codec for the whole run: it is fixed state (the parsed schemas and
 * avro-c readers), reused across inputs as the consumers reuse theirs. */
static ts_codec *codec;

static void free_codec(void) {
    ts_codec_free(codec);
    codec = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char err[256] = "";
    codec = ts_codec_new(err, sizeof err);
    if (!codec) {
        fprintf(stderr, "fuzz_codec: ts_codec_new: %s\n", err);
        abort();
    }
    atexit(free_codec); /* before LeakSanitizer's check at exit */
    if (fuzz_learn_registry_ids(codec, err, sizeof err)) {
        fprintf(stderr, "fuzz_codec: %s\n", err);
        abort();
    }
    return 0;
}

static void fail(const char *what, ts_codec_status status, const char *err) {
    fprintf(stderr, "fuzz_codec: round trip: %s: %s (%s)\n", what, ts_codec_status_name(status),
            err);
    abort();
}

static void same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, const char *what) {
    if (alen != blen || memcmp(a, b, alen) != 0) {
        fprintf(stderr, "fuzz_codec: round trip of a %s is not stable (%zu then %zu bytes)\n", what,
                alen, blen);
        abort();
    }
}

static void command(const uint8_t *data, size_t size) {
    static ts_command first, second;
    static uint8_t buf1[TS_MESSAGE_BYTES_MAX], buf2[TS_MESSAGE_BYTES_MAX];
    char err[256] = "";
    size_t len1 = 0, len2 = 0;
    if (ts_codec_decode_command(codec, data, size, &first, err, sizeof err) != TS_CODEC_OK)
        return;
    ts_codec_status st = ts_codec_encode_command(codec, &first, buf1, sizeof buf1, &len1);
    if (st != TS_CODEC_OK)
        fail("command: re-encode", st, "");
    st = ts_codec_decode_command(codec, buf1, len1, &second, err, sizeof err);
    if (st != TS_CODEC_OK)
        fail("command: decode of the re-encoding", st, err);
    st = ts_codec_encode_command(codec, &second, buf2, sizeof buf2, &len2);
    if (st != TS_CODEC_OK)
        fail("command: second re-encode", st, "");
    same(buf1, len1, buf2, len2, "command");
}

static void reply(const uint8_t *data, size_t size) {
    static ts_reply first, second;
    static uint8_t buf1[TS_MESSAGE_BYTES_MAX], buf2[TS_MESSAGE_BYTES_MAX];
    char err[256] = "";
    size_t len1 = 0, len2 = 0;
    if (ts_codec_decode_reply(codec, data, size, &first, err, sizeof err) != TS_CODEC_OK)
        return;
    ts_codec_status st = ts_codec_encode_reply(codec, &first, buf1, sizeof buf1, &len1);
    if (st != TS_CODEC_OK)
        fail("reply: re-encode", st, "");
    st = ts_codec_decode_reply(codec, buf1, len1, &second, err, sizeof err);
    if (st != TS_CODEC_OK)
        fail("reply: decode of the re-encoding", st, err);
    st = ts_codec_encode_reply(codec, &second, buf2, sizeof buf2, &len2);
    if (st != TS_CODEC_OK)
        fail("reply: second re-encode", st, "");
    same(buf1, len1, buf2, len2, "reply");
}

static void change(const uint8_t *data, size_t size) {
    static ts_change_buf first, second;
    static uint8_t buf1[TS_MESSAGE_BYTES_MAX], buf2[TS_MESSAGE_BYTES_MAX];
    char err[256] = "";
    size_t len1 = 0, len2 = 0;
    if (ts_codec_decode_change(codec, data, size, &first, err, sizeof err) != TS_CODEC_OK)
        return;
    ts_codec_status st = ts_codec_encode_change(codec, &first.change, buf1, sizeof buf1, &len1);
    if (st != TS_CODEC_OK)
        fail("change: re-encode", st, "");
    st = ts_codec_decode_change(codec, buf1, len1, &second, err, sizeof err);
    if (st != TS_CODEC_OK)
        fail("change: decode of the re-encoding", st, err);
    st = ts_codec_encode_change(codec, &second.change, buf2, sizeof buf2, &len2);
    if (st != TS_CODEC_OK)
        fail("change: second re-encode", st, "");
    same(buf1, len1, buf2, len2, "change");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A copy of exactly `size` bytes, so that ASan sees any read past the
     * message (libFuzzer's own buffer is exact too, but a copy keeps the
     * decoders from ever seeing the caller's memory). */
    uint8_t *msg = malloc(size ? size : 1);
    if (!msg)
        return 0;
    if (size)
        memcpy(msg, data, size);
    command(msg, size);
    reply(msg, size);
    change(msg, size);
    free(msg);
    return 0;
}
