/* SPDX-License-Identifier: Apache-2.0 */
/* ts_limits.h — sizes shared by the codec, the database and the HTTP API.
 * Lengths are in bytes of UTF-8, without the terminating NUL. */
#ifndef TS_LIMITS_H
#define TS_LIMITS_H

#define TS_UUID_LEN 36
#define TS_TOPIC_MAX 249 /* Kafka's own limit on topic names */
#define TS_TITLE_MAX 200
#define TS_LOCATION_MAX 200
#define TS_DESCRIPTION_MAX 2000
#define TS_NAME_MAX 200
#define TS_EMAIL_MAX 254
#define TS_MESSAGE_MAX 200
#define TS_CAPACITY_MAX 2147483647L /* the database's integer */

/* Large enough for any valid command or reply, with its single-object header. */
#define TS_MESSAGE_BYTES_MAX 4096

#endif
