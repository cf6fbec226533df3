/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ts_validate: the rules every command follows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ts_validate.h"

static void plausible_emails_pass(void **state) {
    (void)state;
    const char *good[] = {"a@b.co", "ada.lovelace+events@example.org", "X@Y.Z.example"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(ts_validate_email(good[i]), 0);
}

static void implausible_emails_fail(void **state) {
    (void)state;
    const char *bad[] = {"",     "a",       "@b.co",   "a@",       "a@b",      "a@b.",
                         "a@.b", "a b@c.d", "a@@b.co", "a@b@c.co", "a@b.co\n", "a\t@b.co"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ts_validate_email(bad[i]), -1);
    char longest[TS_EMAIL_MAX + 2];
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memcpy(longest + sizeof longest - 7, "@b.com", 7); /* 255 bytes */
    assert_int_equal(ts_validate_email(longest), -1);
}

static void text_must_have_something_visible(void **state) {
    (void)state;
    assert_int_equal(ts_validate_text("Concert"), 0);
    assert_int_equal(ts_validate_text(" x "), 0);
    assert_int_equal(ts_validate_text(""), -1);
    assert_int_equal(ts_validate_text("   "), -1);
    assert_int_equal(ts_validate_text("a\x01"
                                      "b"),
                     -1);
}

/* A creation that passes every rule: a title, a location, one seat. */
static void valid_creation(ts_command *c) {
    memset(c, 0, sizeof *c);
    c->type = TS_CMD_CREATE_EVENT;
    strcpy(c->u.create.title, "T");
    strcpy(c->u.create.location, "L");
    c->u.create.capacity = 1;
}

static void each_rule_names_its_field(void **state) {
    (void)state;
    ts_command c;
    ts_violation why;
    valid_creation(&c);
    assert_int_equal(ts_validate_command(&c, &why), 0);
    c.u.create.capacity = 0;
    assert_int_equal(ts_validate_command(&c, &why), -1);
    assert_string_equal(why.field, "capacity");
    c.u.create.capacity = TS_CAPACITY_MAX + 1;
    assert_int_equal(ts_validate_command(&c, &why), -1);
    c.u.create.capacity = 5;
    c.u.create.starts_at_ms = 253402300800000LL; /* year 10000 */
    assert_int_equal(ts_validate_command(&c, &why), -1);
    assert_string_equal(why.field, "starts_at");
    c.u.create.starts_at_ms = 253402300799999LL; /* the last millisecond of 9999 */
    assert_int_equal(ts_validate_command(&c, &why), 0);
    c.u.create.title[0] = '\0';
    assert_int_equal(ts_validate_command(&c, &why), -1);
    assert_string_equal(why.field, "title");
    strcpy(c.u.create.title, "T");
    strcpy(c.u.create.location, " ");
    assert_int_equal(ts_validate_command(&c, &why), -1);
    assert_string_equal(why.field, "location");

    memset(&c, 0, sizeof c);
    c.type = TS_CMD_REGISTER;
    strcpy(c.u.reg.name, "Ada");
    strcpy(c.u.reg.email, "nope");
    assert_int_equal(ts_validate_command(&c, &why), -1);
    assert_string_equal(why.field, "email");
    strcpy(c.u.reg.email, "ada@example.org");
    assert_int_equal(ts_validate_command(&c, &why), 0);
    c.u.reg.name[0] = '\0';
    assert_int_equal(ts_validate_command(&c, &why), -1);
    assert_string_equal(why.field, "name");
}

/* An update sets what a creation sets: the description an event was made
 * with (several lines, say) can be set again. */
static void an_update_takes_any_description_a_creation_takes(void **state) {
    (void)state;
    const char *descriptions[] = {"Line one\nLine two", "\tindented", "   ", "", "plain"};
    for (size_t i = 0; i < sizeof descriptions / sizeof descriptions[0]; i++) {
        ts_command c;
        ts_violation why;
        valid_creation(&c);
        c.u.create.has_description = true;
        strcpy(c.u.create.description, descriptions[i]);
        assert_int_equal(ts_validate_command(&c, &why), 0);
        memset(&c, 0, sizeof c);
        c.type = TS_CMD_UPDATE_EVENT;
        c.u.update.has_description = true;
        strcpy(c.u.update.description, descriptions[i]);
        assert_int_equal(ts_validate_command(&c, &why), 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plausible_emails_pass),
        cmocka_unit_test(implausible_emails_fail),
        cmocka_unit_test(text_must_have_something_visible),
        cmocka_unit_test(each_rule_names_its_field),
        cmocka_unit_test(an_update_takes_any_description_a_creation_takes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
