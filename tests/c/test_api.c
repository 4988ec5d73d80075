/* The API surface on one node, without network: lifecycle, every value type, typed
 * getters, keys, status, fault settings, limits and the free functions. */
#include <math.h>

#include "harness.h"

static void test_version_and_result_strings(void) {
    const char *version = mesh_version();
    REQUIRE(version != NULL);
    int major = -1, minor = -1, patch = -1;
    CHECK(sscanf(version, "%d.%d.%d", &major, &minor, &patch) == 3);
    CHECK(major >= 0 && minor >= 0 && patch >= 0);

    /* Every code has its own description; unknown codes still get a string. */
    for (int a = MESH_RESULT_OK; a <= MESH_RESULT_QUEUE_FULL; a++) {
        const char *text = mesh_result_str(a);
        REQUIRE(text != NULL);
        CHECK(strlen(text) > 0);
        for (int b = a + 1; b <= MESH_RESULT_QUEUE_FULL; b++) {
            CHECK(strcmp(text, mesh_result_str(b)) != 0);
        }
    }
    CHECK_STR("success", mesh_result_str(MESH_RESULT_OK));
    CHECK_STR("key not found", mesh_result_str(MESH_RESULT_NOT_FOUND));
    CHECK_STR("unknown result code", mesh_result_str(-1));
    CHECK_STR("unknown result code", mesh_result_str(MESH_RESULT_QUEUE_FULL + 1));
}

static void test_node_lifecycle(void) {
    mesh_config_t *config = mesh_config_default();
    REQUIRE(config != NULL);
    CHECK_OK(mesh_config_set_node_id(config, "lifecycle"));
    CHECK_OK(mesh_config_set_host(config, "127.0.0.1"));
    CHECK_OK(mesh_config_set_cluster(config, "c-tests"));
    CHECK_OK(mesh_config_set_seed(config, 42));
    mesh_node_t *node = NULL;
    CHECK_OK(mesh_node_new(config, &node));
    /* The node copied the config: freeing it now is fine. */
    mesh_config_free(config);
    REQUIRE(node != NULL);

    CHECK_STR("lifecycle", mesh_node_id(node));
    CHECK(node_port(node) > 0);
    CHECK(!mesh_node_is_running(node));
    CHECK_OK(mesh_node_start(node));
    CHECK(mesh_node_is_running(node));
    CHECK_OK(mesh_node_start(node)); /* idempotent */
    CHECK_OK(mesh_node_stop(node));
    CHECK(!mesh_node_is_running(node));
    CHECK_OK(mesh_node_stop(node)); /* idempotent */
    CHECK_RC(MESH_RESULT_STOPPED, mesh_node_start(node));
    CHECK_MESSAGE("stopped");
    /* Data stays usable locally after stop. */
    CHECK_OK(mesh_node_set_i64(node, "after-stop", 1));
    int64_t got = 0;
    CHECK_OK(mesh_node_get_i64(node, "after-stop", &got));
    CHECK(got == 1);
    mesh_node_free(node);
}

static void test_every_value_type_round_trips(void) {
    mesh_node_t *node = test_node("values");
    REQUIRE(node != NULL);

    CHECK_OK(mesh_node_set_string(node, "s", "h\xc3\xa9llo \xe2\x9c\x93"));
    const uint8_t raw[] = {0x00, 0x01, 0xfe, 0xff, 0x00};
    CHECK_OK(mesh_node_set_bytes(node, "b", raw, sizeof raw));
    CHECK_OK(mesh_node_set_bytes(node, "empty", NULL, 0));
    CHECK_OK(mesh_node_set_i64(node, "min", INT64_MIN));
    CHECK_OK(mesh_node_set_i64(node, "max", INT64_MAX));
    CHECK_OK(mesh_node_set_f64(node, "f", -2.5e-3));
    CHECK_OK(mesh_node_set_f64(node, "nan", NAN));
    CHECK_OK(mesh_node_set_bool(node, "t", true));
    CHECK_OK(mesh_node_set_null(node, "n"));
    CHECK_OK(mesh_node_set_json(node, "list", "[1, 2.5, \"x\", null, [true]]"));
    CHECK_OK(mesh_node_set_json(node, "map", "{\"b\": {\"$bytes\": \"AAH/\"}, \"a\": [1]}"));
    CHECK_OK(mesh_node_set_json(node, "nul", "\"a\\u0000b\""));

    char *text = NULL;
    size_t len = 0;
    CHECK_OK(mesh_node_get_string(node, "s", &text, &len));
    CHECK_STR("h\xc3\xa9llo \xe2\x9c\x93", text);
    CHECK(len == strlen("h\xc3\xa9llo \xe2\x9c\x93"));
    mesh_string_free(text);

    /* A string holding a NUL byte keeps its full length. */
    text = NULL;
    CHECK_OK(mesh_node_get_string(node, "nul", &text, &len));
    CHECK(len == 3 && text != NULL && memcmp(text, "a\0b", 4) == 0);
    mesh_string_free(text);

    mesh_value_t *value = NULL;
    CHECK_OK(mesh_node_get(node, "b", &value));
    CHECK(mesh_value_get_type(value) == MESH_VALUE_TYPE_BYTES);
    mesh_bytes bytes = {0};
    CHECK_OK(mesh_value_get_bytes(value, &bytes));
    CHECK(bytes.len == sizeof raw && memcmp(bytes.data, raw, sizeof raw) == 0);
    mesh_str json = {0};
    CHECK_OK(mesh_value_to_json(value, &json));
    CHECK_STR("{\"$bytes\":\"AAH+/wA=\"}", json.data);
    CHECK(json.len == strlen(json.data));
    mesh_value_free(value);

    value = NULL;
    CHECK_OK(mesh_node_get(node, "empty", &value));
    CHECK_OK(mesh_value_get_bytes(value, &bytes));
    CHECK(bytes.len == 0 && bytes.data != NULL);
    mesh_value_free(value);

    value = NULL;
    CHECK_OK(mesh_node_get(node, "s", &value));
    mesh_str view = {0};
    CHECK_OK(mesh_value_get_string(value, &view));
    CHECK_STR("h\xc3\xa9llo \xe2\x9c\x93", view.data);
    mesh_value_free(value);

    int64_t i = 0;
    CHECK_OK(mesh_node_get_i64(node, "min", &i));
    CHECK(i == INT64_MIN);
    CHECK_OK(mesh_node_get_i64(node, "max", &i));
    CHECK(i == INT64_MAX);
    double f = 0;
    CHECK_OK(mesh_node_get_f64(node, "f", &f));
    CHECK(f == -2.5e-3);
    CHECK_OK(mesh_node_get_f64(node, "nan", &f));
    CHECK(isnan(f));
    bool b = false;
    CHECK_OK(mesh_node_get_bool(node, "t", &b));
    CHECK(b);

    /* The JSON getter reads every type and says which one it is. */
    struct {
        const char *key;
        mesh_value_type type;
        const char *json;
    } cases[] = {
        {"n", MESH_VALUE_TYPE_NULL, "null"},
        {"t", MESH_VALUE_TYPE_BOOL, "true"},
        {"min", MESH_VALUE_TYPE_INT, "-9223372036854775808"},
        {"f", MESH_VALUE_TYPE_FLOAT, "-0.0025"},
        {"nan", MESH_VALUE_TYPE_FLOAT, "null"},
        {"s", MESH_VALUE_TYPE_STRING, "\"h\xc3\xa9llo \xe2\x9c\x93\""},
        {"b", MESH_VALUE_TYPE_BYTES, "{\"$bytes\":\"AAH+/wA=\"}"},
        {"list", MESH_VALUE_TYPE_LIST, "[1,2.5,\"x\",null,[true]]"},
        {"map", MESH_VALUE_TYPE_MAP, "{\"a\":[1],\"b\":{\"$bytes\":\"AAH/\"}}"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mesh_value_type type = MESH_VALUE_TYPE_MAP + 1;
        char *out = NULL;
        CHECK_OK(mesh_node_get_json(node, cases[c].key, &type, &out));
        CHECK(type == cases[c].type);
        CHECK_STR(cases[c].json, out);
        mesh_string_free(out);
    }
    /* The type out-parameter is optional. */
    char *out = NULL;
    CHECK_OK(mesh_node_get_json(node, "t", NULL, &out));
    CHECK_STR("true", out);
    mesh_string_free(out);

    /* Null is a value: present, unlike a deleted key. */
    value = NULL;
    CHECK_OK(mesh_node_get(node, "n", &value));
    CHECK(value != NULL && mesh_value_get_type(value) == MESH_VALUE_TYPE_NULL);
    mesh_value_free(value);

    mesh_node_free(node);
}

static void test_typed_getters_refuse_other_types(void) {
    mesh_node_t *node = test_node("types");
    REQUIRE(node != NULL);
    CHECK_OK(mesh_node_set_string(node, "s", "text"));
    CHECK_OK(mesh_node_set_i64(node, "i", 7));
    CHECK_OK(mesh_node_set_f64(node, "f", 7.0));

    int64_t i = 99;
    CHECK_RC(MESH_RESULT_TYPE_MISMATCH, mesh_node_get_i64(node, "s", &i));
    CHECK_MESSAGE("the value is a string, not an int");
    CHECK(i == 99); /* untouched on failure */
    CHECK_RC(MESH_RESULT_TYPE_MISMATCH, mesh_node_get_i64(node, "f", &i));
    double f = 0;
    CHECK_RC(MESH_RESULT_TYPE_MISMATCH, mesh_node_get_f64(node, "i", &f));
    CHECK_MESSAGE("the value is an int, not a float");
    bool b = false;
    CHECK_RC(MESH_RESULT_TYPE_MISMATCH, mesh_node_get_bool(node, "i", &b));
    char *text = NULL;
    CHECK_RC(MESH_RESULT_TYPE_MISMATCH, mesh_node_get_string(node, "i", &text, NULL));
    CHECK(text == NULL);

    CHECK_RC(MESH_RESULT_NOT_FOUND, mesh_node_get_i64(node, "missing", &i));
    CHECK_MESSAGE("\"missing\" not found");
    mesh_value_t *value = NULL;
    CHECK_RC(MESH_RESULT_NOT_FOUND, mesh_node_get(node, "missing", &value));
    CHECK(value == NULL);

    CHECK_OK(mesh_node_get(node, "i", &value));
    mesh_str view;
    mesh_bytes bytes;
    CHECK_RC(MESH_RESULT_TYPE_MISMATCH, mesh_value_get_string(value, &view));
    CHECK_RC(MESH_RESULT_TYPE_MISMATCH, mesh_value_get_bytes(value, &bytes));
    CHECK_RC(MESH_RESULT_TYPE_MISMATCH, mesh_value_get_f64(value, &f));
    CHECK_RC(MESH_RESULT_TYPE_MISMATCH, mesh_value_get_bool(value, &b));
    CHECK_OK(mesh_value_get_i64(value, &i));
    CHECK(i == 7);
    mesh_value_free(value);
    /* A success clears the previous message. */
    CHECK_STR("", mesh_last_error_message());
    mesh_node_free(node);
}

static void test_delete_keys_and_snapshot(void) {
    mesh_node_t *node = test_node("keys");
    REQUIRE(node != NULL);
    CHECK_OK(mesh_node_set_i64(node, "c", 3));
    CHECK_OK(mesh_node_set_i64(node, "a", 1));
    CHECK_OK(mesh_node_set_string(node, "b", "two"));

    bool existed = false;
    CHECK_OK(mesh_node_delete(node, "b", &existed));
    CHECK(existed);
    CHECK_OK(mesh_node_delete(node, "b", &existed));
    CHECK(!existed);
    CHECK_OK(mesh_node_delete(node, "never", NULL));
    int64_t i;
    CHECK_RC(MESH_RESULT_NOT_FOUND, mesh_node_get_i64(node, "b", &i));

    size_t len = 0;
    CHECK_OK(mesh_node_len(node, &len));
    CHECK(len == 2);

    mesh_keys_t *keys = NULL;
    CHECK_OK(mesh_node_keys(node, &keys));
    REQUIRE(keys != NULL);
    /* Later writes do not change a snapshot. */
    CHECK_OK(mesh_node_set_i64(node, "d", 4));
    CHECK(mesh_keys_len(keys) == 2);
    mesh_str key = {0};
    CHECK_OK(mesh_keys_get(keys, 0, &key));
    CHECK_STR("a", key.data);
    CHECK(key.len == 1);
    CHECK_OK(mesh_keys_get(keys, 1, &key));
    CHECK_STR("c", key.data);
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_keys_get(keys, 2, &key));
    CHECK_MESSAGE("out of range");
    mesh_keys_free(keys);

    char *all = NULL;
    CHECK_OK(mesh_node_get_all_json(node, &all));
    CHECK_STR("{\"a\":1,\"c\":3,\"d\":4}", all);
    mesh_string_free(all);
    mesh_node_free(node);
}

static void test_status_struct_and_json(void) {
    mesh_node_t *node = test_node("status");
    REQUIRE(node != NULL);
    CHECK_OK(mesh_node_set_i64(node, "x", 1));
    CHECK_OK(mesh_node_set_i64(node, "y", 2));
    CHECK_OK(mesh_node_delete(node, "y", NULL));
    CHECK_OK(mesh_node_add_bootstrap_peer(node, "127.0.0.1", 9));

    mesh_status status;
    memset(&status, 0xab, sizeof status);
    CHECK_OK(mesh_node_status(node, &status));
    CHECK(status.port == node_port(node));
    CHECK(!status.running);
    CHECK(status.data_keys == 1);
    CHECK(status.tombstones == 1);
    CHECK(status.state_version >= 3);
    CHECK(status.bootstrap_peers == 1);
    CHECK(status.total_peers == 1);
    CHECK(status.alive_peers == 0);
    CHECK(status.hlc > 0);

    char *json = NULL;
    CHECK_OK(mesh_node_status_json(node, &json));
    REQUIRE(json != NULL);
    CHECK(strstr(json, "\"node_id\":\"status\"") != NULL);
    CHECK(strstr(json, "\"data_keys\":1") != NULL);
    CHECK(strstr(json, "\"bootstrap_peers\":1") != NULL);
    CHECK(strstr(json, "\"counters\":{") != NULL);
    mesh_string_free(json);

    json = NULL;
    CHECK_OK(mesh_node_peers_json(node, &json));
    REQUIRE(json != NULL);
    CHECK(strstr(json, "\"addr\":\"127.0.0.1:9\"") != NULL);
    CHECK(strstr(json, "\"bootstrap\":true") != NULL);
    CHECK(strstr(json, "\"datagram_size\":1200") != NULL);
    mesh_string_free(json);
    mesh_node_free(node);
}

static bool collecting_settings(mesh_config_t *config, const void *max_collected) {
    const long *cap = max_collected;
    return mesh_config_set_host(config, "127.0.0.1") == MESH_RESULT_OK &&
           mesh_config_set_sync_interval_ms(config, 100) == MESH_RESULT_OK &&
           mesh_config_set_heartbeat_interval_ms(config, 50) == MESH_RESULT_OK &&
           mesh_config_set_peer_timeout_ms(config, 500) == MESH_RESULT_OK &&
           mesh_config_set_tombstone_grace_ms(config, 3600 * 1000) == MESH_RESULT_OK &&
           (*cap < 0 ||
            mesh_config_set_max_collected_deletes(config, (size_t)*cap) == MESH_RESULT_OK);
}

/* A node with intervals short enough to collect a tombstone within a second or two (past
 * its warm-up of 20 heartbeats), remembering at most `max_collected` collected deletes
 * (-1: the default). */
static mesh_node_t *collecting_node(const char *node_id, long max_collected) {
    return node_with(node_id, collecting_settings, &max_collected);
}

static bool no_tombstone(void *arg) {
    mesh_status status;
    return mesh_node_status(arg, &status) == MESH_RESULT_OK && status.tombstones == 0;
}

/* A delete's tombstone, once collected, is remembered (status JSON `collected_deletes`)
 * unless `mesh_config_set_max_collected_deletes` set 0. */
static void test_collected_deletes_are_remembered_unless_the_cap_is_zero(void) {
    const long caps[] = {-1, 0};
    const char *expected[] = {"\"collected_deletes\":1", "\"collected_deletes\":0"};
    for (size_t i = 0; i < 2; i++) {
        mesh_node_t *a = collecting_node("collector", caps[i]);
        mesh_node_t *b = collecting_node("confirmer", -1);
        bool paired = a != NULL && b != NULL &&
                      mesh_node_add_bootstrap_peer(b, "127.0.0.1", node_port(a)) ==
                          MESH_RESULT_OK &&
                      mesh_node_start(a) == MESH_RESULT_OK && mesh_node_start(b) == MESH_RESULT_OK;
        if (!paired) {
            mesh_node_free(a);
            mesh_node_free(b);
        }
        REQUIRE(paired);
        CHECK_OK(mesh_node_set_i64(a, "k", 1));
        CHECK_OK(mesh_node_delete(a, "k", NULL));
        CHECK(wait_until(no_tombstone, a));
        char *json = NULL;
        CHECK_OK(mesh_node_status_json(a, &json));
        if (json == NULL || strstr(json, expected[i]) == NULL) {
            fprintf(stderr, "  expected %s in %s\n", expected[i], json ? json : "(null)");
            CHECK(false);
        }
        mesh_string_free(json);
        mesh_node_free(a);
        mesh_node_free(b);
    }
}

static void test_fault_settings(void) {
    mesh_node_t *node = test_node("faults");
    REQUIRE(node != NULL);
    CHECK_OK(mesh_node_set_loss(node, 0.3));
    CHECK_OK(mesh_node_set_loss(node, 0.0));
    CHECK_OK(mesh_node_set_loss(node, 1.0));
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_node_set_loss(node, 1.5));
    CHECK_MESSAGE("loss_rate");
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_node_set_loss(node, -0.1));
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_node_set_loss(node, NAN));
    CHECK_OK(mesh_node_set_delay(node, 20, 5));
    CHECK_OK(mesh_node_partition_add(node, "127.0.0.1", 9));
    CHECK_OK(mesh_node_partition_add(node, "localhost", 10));
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_node_partition_add(node, "127.0.0.1", 0));
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_node_partition_add(node, "127.0.0.1", 65536));
    CHECK_OK(mesh_node_partition_clear(node));
    CHECK_OK(mesh_node_faults_clear(node));

    mesh_fault_stats stats;
    memset(&stats, 0xab, sizeof stats);
    CHECK_OK(mesh_node_fault_stats(node, &stats));
    /* Never started: nothing went through the injector. */
    CHECK(stats.packets_sent == 0);
    CHECK(stats.packets_dropped == 0);
    CHECK(stats.packets_partitioned == 0);
    mesh_node_free(node);
}

static void test_size_limits(void) {
    mesh_config_t *config = mesh_config_default();
    REQUIRE(config != NULL);
    CHECK_OK(mesh_config_set_node_id(config, "limits"));
    CHECK_OK(mesh_config_set_host(config, "127.0.0.1"));
    CHECK_OK(mesh_config_set_max_key_len(config, 8));
    CHECK_OK(mesh_config_set_max_value_size(config, 64));
    mesh_node_t *node = NULL;
    CHECK_OK(mesh_node_new(config, &node));
    mesh_config_free(config);
    REQUIRE(node != NULL);

    CHECK_OK(mesh_node_set_i64(node, "12345678", 1));
    CHECK_RC(MESH_RESULT_KEY_TOO_LONG, mesh_node_set_i64(node, "123456789", 1));
    CHECK_MESSAGE("key is 9 bytes, the limit is 8");
    CHECK_RC(MESH_RESULT_KEY_TOO_LONG, mesh_node_delete(node, "123456789", NULL));
    char big[200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_RC(MESH_RESULT_VALUE_TOO_LARGE, mesh_node_set_string(node, "big", big));
    CHECK_MESSAGE("the limit is 64");
    size_t len = 99;
    CHECK_OK(mesh_node_len(node, &len));
    CHECK(len == 1);
    mesh_node_free(node);
}

static void test_free_functions_accept_null_and_double_node_free(void) {
    mesh_node_free(NULL);
    mesh_config_free(NULL);
    mesh_value_free(NULL);
    mesh_keys_free(NULL);
    mesh_string_free(NULL);
    CHECK(mesh_keys_len(NULL) == 0);
    CHECK(mesh_node_id(NULL) == NULL);
    CHECK(!mesh_node_is_running(NULL));
    CHECK(mesh_value_get_type(NULL) == MESH_VALUE_TYPE_NULL);

    /* Freeing a node twice is detected and ignored (valgrind checks that the second call
     * touches no freed memory). */
    mesh_node_t *node = test_node("twice");
    REQUIRE(node != NULL);
    CHECK_OK(mesh_node_start(node));
    mesh_node_free(node);
    mesh_node_free(node);
}

int main(void) {
    const test_case tests[] = {
        {"version_and_result_strings", test_version_and_result_strings},
        {"node_lifecycle", test_node_lifecycle},
        {"every_value_type_round_trips", test_every_value_type_round_trips},
        {"typed_getters_refuse_other_types", test_typed_getters_refuse_other_types},
        {"delete_keys_and_snapshot", test_delete_keys_and_snapshot},
        {"status_struct_and_json", test_status_struct_and_json},
        {"collected_deletes_are_remembered_unless_the_cap_is_zero",
         test_collected_deletes_are_remembered_unless_the_cap_is_zero},
        {"fault_settings", test_fault_settings},
        {"size_limits", test_size_limits},
        {"free_functions_accept_null_and_double_node_free",
         test_free_functions_accept_null_and_double_node_free},
    };
    return run_tests("test_api", tests, sizeof tests / sizeof tests[0]);
}
