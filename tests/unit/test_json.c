#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static json_node_t *parse(const char *text, bool comments, char *err, size_t errlen)
{
    return json_parse(text, strlen(text), comments, err, errlen);
}

static void test_kinds_and_values(void **state)
{
    (void)state;
    char err[256];
    json_node_t *r = parse("{\"n\":null,\"t\":true,\"f\":false,\"i\":-42,\"d\":1.005,"
                           "\"s\":\"a\\\"b\\u00e9\",\"a\":[1,[2],{}],\"o\":{\"x\":{}}}",
                           false, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(json_kind(r), JSON_OBJECT);
    assert_int_equal(json_object_len(r), 8);
    assert_int_equal(json_kind(json_object_get(r, "n")), JSON_NULL);
    assert_true(json_bool(json_object_get(r, "t")));
    assert_false(json_bool(json_object_get(r, "f")));
    assert_int_equal(json_kind(json_object_get(r, "f")), JSON_BOOL);
    int64_t i = 0;
    assert_int_equal(json_number_int64(json_object_get(r, "i"), &i), 0);
    assert_int_equal(i, -42);
    /* Literals are kept as written, not reformatted through a double. */
    assert_string_equal(json_number_literal(json_object_get(r, "d")), "1.005");
    assert_int_equal(json_number_int64(json_object_get(r, "d"), &i), -1);
    double d = 0;
    assert_int_equal(json_number_double(json_object_get(r, "d"), &d), 0);
    assert_true(d > 1.004 && d < 1.006);
    size_t len = 0;
    assert_string_equal(json_string(json_object_get(r, "s"), &len), "a\"b\xc3\xa9");
    assert_int_equal(len, 5);
    const json_node_t *a = json_object_get(r, "a");
    assert_int_equal(json_array_len(a), 3);
    assert_int_equal(json_kind(json_array_at(a, 1)), JSON_ARRAY);
    assert_int_equal(json_kind(json_array_at(a, 2)), JSON_OBJECT);
    assert_null(json_array_at(a, 3));
    assert_non_null(json_object_get(json_object_get(r, "o"), "x"));
    /* Wrong-kind and missing lookups are harmless. */
    assert_null(json_object_get(r, "missing"));
    assert_null(json_string(a, NULL));
    assert_null(json_number_literal(a));
    assert_int_equal(json_array_len(r), 0);
    assert_int_equal(json_object_len(a), 0);
    assert_null(json_object_key_at(r, 99, NULL));
    assert_string_equal(json_kind_name(JSON_OBJECT), "object");
    assert_string_equal(json_kind_name(JSON_BOOL), "boolean");
    json_free(r);
    json_free(NULL);
}

static void test_top_level_scalars(void **state)
{
    (void)state;
    char err[256];
    json_node_t *r = parse(" 42 ", false, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(json_number_literal(r), "42");
    assert_int_equal(json_column(r), 2);
    json_free(r);
    r = parse("\"x\"", false, err, sizeof err);
    assert_string_equal(json_string(r, NULL), "x");
    json_free(r);
}

static void test_int64_bounds(void **state)
{
    (void)state;
    static const struct { const char *lit; int rc; int64_t v; } cases[] = {
        {"0", 0, 0}, {"-0", 0, 0}, {"9223372036854775807", 0, INT64_MAX},
        {"-9223372036854775808", 0, INT64_MIN}, {"9223372036854775808", -2, 0},
        {"-9223372036854775809", -2, 0}, {"100000000000000000000", -2, 0},
        {"60.0", -1, 0}, {"6e1", -1, 0}, {"6E1", -1, 0}, {"1e999", -1, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char err[256];
        json_node_t *r = parse(cases[k].lit, false, err, sizeof err);
        assert_non_null(r);
        int64_t v = 12345;
        int rc = json_number_int64(r, &v);
        if (rc != cases[k].rc)
            fail_msg("%s: rc %d, want %d", cases[k].lit, rc, cases[k].rc);
        if (rc == 0)
            assert_int_equal(v, cases[k].v);
        json_free(r);
    }
}

static void test_positions(void **state)
{
    (void)state;
    char err[256];
    const char *text = "{\n"
                       "  \"a\": 1, // note\n"
                       "  /* block\n"
                       "     comment */ \"b\" : [true,\n"
                       "\t\"s\"]\n"
                       "}";
    json_node_t *r = parse(text, true, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(json_line(r), 1);
    assert_int_equal(json_column(r), 1);
    int line, col;
    json_object_key_position(r, 0, &line, &col);
    assert_int_equal(line, 2);
    assert_int_equal(col, 3);
    assert_int_equal(json_line(json_object_value_at(r, 0)), 2);
    assert_int_equal(json_column(json_object_value_at(r, 0)), 8);
    json_object_key_position(r, 1, &line, &col);
    assert_int_equal(line, 4);
    assert_int_equal(col, 17);
    const json_node_t *b = json_object_get(r, "b");
    assert_int_equal(json_line(b), 4);
    assert_int_equal(json_column(b), 23);
    assert_int_equal(json_line(json_array_at(b, 1)), 5);
    assert_int_equal(json_column(json_array_at(b, 1)), 2);
    json_free(r);
}

static void test_comments_need_the_flag(void **state)
{
    (void)state;
    char err[256];
    const char *text = "{\"a\": 1 // c\n}";
    assert_null(parse(text, false, err, sizeof err));
    assert_non_null(strstr(err, "line 1, column"));
    json_node_t *r = parse(text, true, err, sizeof err);
    assert_non_null(r);
    json_free(r);
}

static void test_duplicates_small_and_large(void **state)
{
    (void)state;
    char err[256];
    json_node_t *r = parse("{\"a\":1,\"b\":2,\"a\":3,\"a\":4}", false, err, sizeof err);
    assert_non_null(r);
    assert_false(json_object_key_is_dup(r, 0));
    assert_false(json_object_key_is_dup(r, 1));
    assert_true(json_object_key_is_dup(r, 2));
    assert_true(json_object_key_is_dup(r, 3));
    /* json_object_get returns the first occurrence. */
    assert_string_equal(json_number_literal(json_object_get(r, "a")), "1");
    json_free(r);

    /* Over 16 members the sorted path is used; the duplicate sits far from its twin and
     * a key that is a prefix of another must not be taken for a duplicate. */
    char big[4096];
    size_t o = 0;
    o += (size_t)snprintf(big + o, sizeof big - o, "{");
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(big + o, sizeof big - o, "\"k%d\":%d,", i, i);
    snprintf(big + o, sizeof big - o, "\"k1\":0,\"k\":1}");
    r = parse(big, false, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(json_object_len(r), 42);
    for (size_t i = 0; i < 40; i++)
        assert_false(json_object_key_is_dup(r, i));
    assert_true(json_object_key_is_dup(r, 40));
    assert_false(json_object_key_is_dup(r, 41));
    json_free(r);
}

static void test_embedded_nul(void **state)
{
    (void)state;
    char err[256];
    json_node_t *r = parse("{\"a\\u0000b\":\"x\\u0000y\"}", false, err, sizeof err);
    assert_non_null(r);
    size_t klen = 0, len = 0;
    assert_non_null(json_object_key_at(r, 0, &klen));
    assert_int_equal(klen, 3);
    /* A key holding NUL never matches a C string lookup. */
    assert_null(json_object_get(r, "a"));
    const char *s = json_string(json_object_value_at(r, 0), &len);
    assert_int_equal(len, 3);
    assert_int_equal(strlen(s), 1);
    json_free(r);
}

static void expect_error(const char *text, const char *want)
{
    char err[256] = "";
    json_node_t *r = parse(text, true, err, sizeof err);
    if (r) {
        json_free(r);
        fail_msg("parsed: %s", text);
    }
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("%s: got \"%s\", want prefix \"%s\"", text, err, want);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_error("", "line 1, column 1: empty document");
    expect_error("  // only a comment\n", "line 2, column 1: empty document");
    expect_error("{\"a\":1,}", "line 1, column 8: parse error");
    expect_error("{\n \"a\": tru }", "line 2, column");
    expect_error("{\"a\": 1", "line 1, column 8: parse error: premature EOF");
    expect_error("[1 2]", "line 1, column 4: parse error");
    expect_error("{\"a\":1} x", "line 1, column 9: parse error: trailing garbage");
    expect_error("{\"a\":\n  \"\xff\"}", "line 2, column 4: lexical error");
    expect_error("{'a':1}", "line 1, column 2:");
}

static void test_depth_limit(void **state)
{
    (void)state;
    char text[2 * (JSON_MAX_DEPTH + 1) + 1];
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        text[2 * depth] = '\0';
        char err[256] = "";
        json_node_t *r = parse(text, false, err, sizeof err);
        if (depth == JSON_MAX_DEPTH) {
            assert_non_null(r);
            json_free(r);
        } else {
            assert_null(r);
            assert_non_null(strstr(err, "nested deeper than 128 levels"));
        }
    }
}

static void test_not_nul_terminated(void **state)
{
    (void)state;
    char err[256];
    const char buf[] = {'[', '1', ',', '2', ']', 'x', 'x'};
    json_node_t *r = json_parse(buf, 5, false, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(json_array_len(r), 2);
    json_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds_and_values),
        cmocka_unit_test(test_top_level_scalars),
        cmocka_unit_test(test_int64_bounds),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_comments_need_the_flag),
        cmocka_unit_test(test_duplicates_small_and_large),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_not_nul_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
