/* SPDX-License-Identifier: Apache-2.0 */
/* ts_log.c — see ts_log.h.
 *
 * A message is written as printf formats it, key=value pairs by the
 * project's convention. The JSON format parses those pairs back out of the
 * formatted text rather than asking every call site for structured fields:
 * the call sites stay one format string each, and both formats carry the
 * same fields. The JSON is written by hand into a fixed buffer: no
 * allocation on the way to stderr, and every byte of the message goes
 * through one escaper that cannot leave a line broken. */
#include "ts_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = TS_LOG_INFO;
static atomic_int format = TS_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const format_names[] = {"text", "json"};

void ts_log_set_level(ts_log_level level) {
    atomic_store(&min_level, (int)level);
}

int ts_log_parse_level(const char *name, ts_log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (ts_log_level)i;
            return 0;
        }
    }
    return -1;
}

void ts_log_set_format(ts_log_format f) {
    atomic_store(&format, (int)f);
}

int ts_log_parse_format(const char *name, ts_log_format *out) {
    for (int i = 0; i < 2; i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = (ts_log_format)i;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------ the message's pairs */

#define KEY_MAX 64    /* a longer "key=" is text */
#define FIELDS_MAX 64 /* pairs past these are text */

static bool is_key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* The length of the key of a "key=" at s[i], or 0 when there is none. */
static size_t key_at(const char *s, size_t i, size_t end) {
    size_t n = 0;
    while (i + n < end && n <= KEY_MAX && is_key_char(s[i + n]))
        n++;
    return n > 0 && n <= KEY_MAX && i + n < end && s[i + n] == '=' ? n : 0;
}

/* One token of a message: a key=value pair, or a word of text. */
typedef struct token {
    bool pair;
    size_t key, key_len; /* pair */
    size_t val, val_len; /* pair: the value, quotes off; text: the word */
} token;

/* The token at or after *pos, and *pos past it; false at the end. */
static bool next_token(const char *s, size_t end, size_t *pos, token *t) {
    size_t i = *pos;
    while (i < end && s[i] == ' ')
        i++;
    if (i == end)
        return false;
    size_t k = key_at(s, i, end);
    if (!k) { /* a word of text */
        size_t j = i;
        while (j < end && s[j] != ' ')
            j++;
        *t = (token){.pair = false, .val = i, .val_len = j - i};
        *pos = j;
        return true;
    }
    *t = (token){.pair = true, .key = i, .key_len = k, .val = i + k + 1};
    size_t v = i + k + 1;
    if (v < end && s[v] == '"') {
        /* quoted: to the quote that ends the message, or is followed by
         * spaces and the next key= (a quote inside a value is left alone) */
        t->val = v + 1;
        for (size_t j = v + 1; j < end; j++) {
            if (s[j] != '"')
                continue;
            size_t after = j + 1;
            while (after < end && s[after] == ' ')
                after++;
            if (after == end || (after > j + 1 && key_at(s, after, end))) {
                t->val_len = j - (v + 1);
                *pos = j + 1;
                return true;
            }
        }
        t->val_len = end - (v + 1); /* never closed: the rest */
        *pos = end;
        return true;
    }
    size_t j = v;
    while (j < end && s[j] != ' ')
        j++;
    t->val_len = j - v;
    *pos = j;
    return true;
}

/* ------------------------------------------------------------ JSON into a fixed buffer */

#define TRUNCATED ",\"truncated\":true"

/* A line being written: at most `limit` bytes of members, so that the end
 * (a string's closing quote, TRUNCATED, "}\n" and the NUL) always fits. */
typedef struct jw {
    char *buf;
    size_t len, limit;
    bool full; /* something did not fit: the line is cut */
} jw;

static bool put(jw *w, const char *s, size_t n) {
    if (w->full || w->len + n > w->limit) {
        w->full = true;
        return false;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    return true;
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0: overlong forms,
 * surrogates and code points past U+10FFFF are not valid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0], min;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    unsigned cp = c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    return cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : len;
}

/* s[0..n) escaped, inside a string already open: each character whole or
 * not at all. False once one did not fit. */
static bool put_escaped(jw *w, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        const char *out = esc;
        size_t len = 2, used = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
        } else if (c == '\n') {
            out = "\\n";
        } else if (c == '\r') {
            out = "\\r";
        } else if (c == '\t') {
            out = "\\t";
        } else if (c < 0x20) {
            len = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
        } else if ((used = utf8_len((const unsigned char *)s + i, n - i)) == 0) {
            out = "\\ufffd"; /* not UTF-8: one byte replaced */
            len = 6, used = 1;
        } else {
            out = s + i, len = used;
        }
        if (!put(w, out, len))
            return false;
        i += used;
    }
    return true;
}

/* A name as written: `prefix` underscores, then key[0..len). */
typedef struct name {
    const char *key;
    size_t len, prefix;
} name;

/* The i-th character of a name as written. */
static char name_at(const name *n, size_t i) {
    if (i < n->prefix)
        return '_';
    return n->key[i - n->prefix];
}

static bool same_name(const name *a, const name *b) {
    if (a->prefix + a->len != b->prefix + b->len)
        return false;
    for (size_t i = 0; i < a->prefix + a->len; i++)
        if (name_at(a, i) != name_at(b, i))
            return false;
    return true;
}

/* Opens a member: ,"name":" (no comma first). False, and nothing written,
 * when it does not fit. */
static bool open_member(jw *w, const name *n) {
    size_t start = w->len;
    bool ok = put(w, start == 1 ? "\"" : ",\"", start == 1 ? 1 : 2);
    for (size_t i = 0; ok && i < n->prefix; i++)
        ok = put(w, "_", 1);
    if (ok && put(w, n->key, n->len) && put(w, "\":\"", 3))
        return true;
    w->len = start;
    return false;
}

/* Closes the string a member opened: its room is kept out of w->limit. */
static void close_member(jw *w) {
    w->buf[w->len++] = '"';
}

static void put_member(jw *w, const char *key, const char *value) {
    name n = {key, strlen(key), 0};
    if (!open_member(w, &n))
        return;
    put_escaped(w, value, strlen(value));
    close_member(w);
}

/* The names written so far: the three of every line, then the message's. */
typedef struct names {
    name v[3 + FIELDS_MAX + 1];
    size_t n;
} names;

/* The name `key` is written under: with as many underscores in front as it
 * takes to be new. Remembered. */
static name new_name(names *seen, const char *key, size_t len) {
    name n = {key, len, 0};
    for (size_t i = 0; i < seen->n;) {
        if (same_name(&seen->v[i], &n)) {
            n.prefix++;
            i = 0;
        } else {
            i++;
        }
    }
    seen->v[seen->n++] = n;
    return n;
}

size_t ts_log_json_line(char *out, size_t cap, const char *ts, const char *level,
                        const char *component, const char *msg, bool cut) {
    /* room kept for the end: a string's quote, TRUNCATED, "}\n", NUL */
    jw w = {.buf = out, .len = 0, .limit = cap - (1 + sizeof TRUNCATED - 1 + 2 + 1)};
    names seen = {.v = {{"ts", 2, 0}, {"level", 5, 0}, {"component", 9, 0}}, .n = 3};
    out[w.len++] = '{';
    put_member(&w, "ts", ts);
    put_member(&w, "level", level);
    put_member(&w, "component", component);

    /* the pairs, in order; the first FIELDS_MAX only */
    size_t end = strlen(msg), pos = 0, pairs = 0;
    bool text = false;
    token t;
    while (!w.full && next_token(msg, end, &pos, &t)) {
        if (!t.pair || pairs == FIELDS_MAX) {
            text = true;
            continue;
        }
        pairs++;
        name n = new_name(&seen, msg + t.key, t.key_len);
        if (open_member(&w, &n)) {
            put_escaped(&w, msg + t.val, t.val_len);
            close_member(&w);
        }
    }
    /* the rest, words and pairs past FIELDS_MAX as written, in "text" */
    if (text && !w.full) {
        name n = new_name(&seen, "text", 4);
        if (open_member(&w, &n)) {
            bool first = true;
            pos = 0, pairs = 0;
            while (!w.full && next_token(msg, end, &pos, &t)) {
                if (t.pair && pairs++ < FIELDS_MAX)
                    continue;
                size_t start = t.pair ? t.key : t.val;
                if (!first)
                    put_escaped(&w, " ", 1);
                put_escaped(&w, msg + start, pos - start);
                first = false;
            }
            close_member(&w);
        }
    }
    if (w.full || cut) {
        memcpy(out + w.len, TRUNCATED, sizeof TRUNCATED - 1);
        w.len += sizeof TRUNCATED - 1;
    }
    out[w.len++] = '}';
    out[w.len++] = '\n';
    out[w.len] = '\0';
    return w.len;
}

/* ------------------------------------------------------------ writing */

/* "2026-11-25T01:23:00.123Z": now, UTC, with milliseconds. */
static void timestamp(char out[32]) {
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

void ts_log(ts_log_level level, const char *component, const char *fmt, ...) {
    if ((int)level < atomic_load(&min_level))
        return;
    char ts[32], msg[2048];
    timestamp(ts);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0) {
        msg[0] = '\0';
        m = 0;
    }
    bool cut = (size_t)m >= sizeof msg;
    ssize_t written;
    if (atomic_load(&format) == TS_LOG_JSON) {
        char json[4096]; /* escapes make a line longer; past this it is cut, and says so */
        size_t len =
            ts_log_json_line(json, sizeof json, ts, level_names[level], component, msg, cut);
        written = write(STDERR_FILENO, json, len);
    } else {
        char line[2048 + 64];
        int n = snprintf(line, sizeof line, "%s %s %s %s", ts, level_names[level], component, msg);
        /* A line too long is cut, never split: it stays one event. */
        size_t len = n < 0 || (size_t)n >= sizeof line - 1 ? sizeof line - 2 : (size_t)n;
        line[len++] = '\n';
        written = write(STDERR_FILENO, line, len);
    }
    (void)written;
}
