/* Error paths: NULL pointers, invalid UTF-8, out-of-range ports, bad configuration,
 * bad JSON, a port already in use, and the thread-local error message. None may crash;
 * each must return its code and leave out-parameters untouched. */
#include <limits.h>
#include <pthread.h>

#include "harness.h"

static const char BAD_UTF8[] = {'k', (char)0xff, (char)0xfe, '\0'};

static void test_null_arguments(void) {
    mesh_node_t *node = test_node("nulls");
    REQUIRE(node != NULL);
    const uint8_t byte = 1;
    int64_t i;
    double f;
    bool b;
    uint16_t port;
    size_t len;
    char *text;
    mesh_value_t *value;
    mesh_keys_t *keys;
    mesh_status status;
    mesh_fault_stats stats;

    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_new(NULL, &node));
    CHECK_MESSAGE("`config` must not be NULL");
    mesh_config_t *config = mesh_config_default();
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_new(config, NULL));
    CHECK_MESSAGE("`node_out` must not be NULL");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_node_id(config, NULL));
    CHECK_MESSAGE("`node_id` must not be NULL");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_host(config, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_cluster(config, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_node_id(NULL, "x"));
    CHECK_MESSAGE("`config` must not be NULL");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_port(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_sync_interval_ms(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_heartbeat_interval_ms(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_peer_timeout_ms(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_initial_rto_ms(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_max_retries(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_push_delay_ms(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_push_fanout(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_max_key_len(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_max_value_size(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_max_datagram_size(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_max_probed_datagram_size(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_seed(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_tombstone_grace_ms(NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_max_collected_deletes(NULL, 1));
    mesh_config_free(config);

    /* A NULL node. */
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_start(NULL));
    CHECK_MESSAGE("`node` must not be NULL");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_stop(NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_port(NULL, &port));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_add_bootstrap_peer(NULL, "127.0.0.1", 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_string(NULL, "k", "v"));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_bytes(NULL, "k", &byte, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_i64(NULL, "k", 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_f64(NULL, "k", 1.0));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_bool(NULL, "k", true));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_null(NULL, "k"));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_json(NULL, "k", "1"));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get(NULL, "k", &value));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_i64(NULL, "k", &i));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_f64(NULL, "k", &f));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_bool(NULL, "k", &b));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_string(NULL, "k", &text, &len));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_json(NULL, "k", NULL, &text));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_delete(NULL, "k", NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_len(NULL, &len));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_keys(NULL, &keys));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_all_json(NULL, &text));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_status(NULL, &status));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_status_json(NULL, &text));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_peers_json(NULL, &text));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_state_callback(NULL, NULL, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_peer_callback(NULL, NULL, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_loss(NULL, 0.1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_delay(NULL, 1, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_partition_add(NULL, "127.0.0.1", 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_partition_clear(NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_faults_clear(NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_fault_stats(NULL, &stats));

    /* NULL keys, values and out-parameters on a live node. */
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_i64(node, NULL, 1));
    CHECK_MESSAGE("`key` must not be NULL");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_string(node, "k", NULL));
    CHECK_MESSAGE("`value` must not be NULL");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_bytes(node, "k", NULL, 4));
    CHECK_MESSAGE("`data` must not be NULL");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_json(node, "k", NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get(node, NULL, &value));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_delete(node, NULL, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_add_bootstrap_peer(node, NULL, 1));
    CHECK_MESSAGE("`host` must not be NULL");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_partition_add(node, NULL, 1));
    CHECK_OK(mesh_node_set_i64(node, "k", 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get(node, "k", NULL));
    CHECK_MESSAGE("`value_out` must not be NULL");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_i64(node, "k", NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_f64(node, "k", NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_bool(node, "k", NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_string(node, "k", NULL, &len));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_json(node, "k", NULL, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_port(node, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_len(node, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_keys(node, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_get_all_json(node, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_status(node, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_status_json(node, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_peers_json(node, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_fault_stats(node, NULL));

    /* NULL value handles and key snapshots. */
    mesh_str view;
    mesh_bytes bytes;
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_value_get_i64(NULL, &i));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_value_get_f64(NULL, &f));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_value_get_bool(NULL, &b));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_value_get_string(NULL, &view));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_value_get_bytes(NULL, &bytes));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_value_to_json(NULL, &view));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_keys_get(NULL, 0, &view));
    value = NULL;
    CHECK_OK(mesh_node_get(node, "k", &value));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_value_get_i64(value, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_value_to_json(value, NULL));
    mesh_value_free(value);

    /* The data is intact after all that. */
    i = 0;
    CHECK_OK(mesh_node_get_i64(node, "k", &i));
    CHECK(i == 1);
    mesh_node_free(node);
}

static void test_invalid_utf8(void) {
    mesh_node_t *node = test_node("utf8");
    REQUIRE(node != NULL);
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_node_set_i64(node, BAD_UTF8, 1));
    CHECK_MESSAGE("`key` is not valid UTF-8 (bad byte at offset 1)");
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_node_set_string(node, "k", BAD_UTF8));
    CHECK_MESSAGE("`value` is not valid UTF-8");
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_node_set_json(node, "k", BAD_UTF8));
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_node_add_bootstrap_peer(node, BAD_UTF8, 1));
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_node_partition_add(node, BAD_UTF8, 1));
    int64_t i;
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_node_get_i64(node, BAD_UTF8, &i));
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_node_delete(node, BAD_UTF8, NULL));
    /* Overlong encodings and lone surrogates are invalid UTF-8 too. */
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_node_set_string(node, "k", "\xc0\xaf"));
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_node_set_string(node, "k", "\xed\xa0\x80"));

    mesh_config_t *config = mesh_config_default();
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_config_set_node_id(config, BAD_UTF8));
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_config_set_host(config, BAD_UTF8));
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_config_set_cluster(config, BAD_UTF8));
    mesh_config_free(config);

    size_t len = 99;
    CHECK_OK(mesh_node_len(node, &len));
    CHECK(len == 0);
    mesh_node_free(node);
}

static void test_out_of_range_ports(void) {
    mesh_config_t *config = mesh_config_default();
    REQUIRE(config != NULL);
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_config_set_port(config, -1));
    CHECK_MESSAGE("`port` must be between 0 and 65535, got -1");
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_config_set_port(config, 65536));
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_config_set_port(config, INT_MAX));
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_config_set_port(config, INT_MIN));
    CHECK_OK(mesh_config_set_port(config, 0));
    CHECK_OK(mesh_config_set_port(config, 65535));
    mesh_config_free(config);

    mesh_node_t *node = test_node("ports");
    REQUIRE(node != NULL);
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_node_add_bootstrap_peer(node, "127.0.0.1", 0));
    CHECK_MESSAGE("`port` must be between 1 and 65535, got 0");
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_node_add_bootstrap_peer(node, "127.0.0.1", -5));
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT,
             mesh_node_add_bootstrap_peer(node, "127.0.0.1", 70000));
    mesh_status status;
    CHECK_OK(mesh_node_status(node, &status));
    CHECK(status.total_peers == 0);
    mesh_node_free(node);
}

/* Creates a node from a config adjusted by `adjust`, expecting `mesh_node_new` to fail
 * with INVALID_CONFIG naming `field`. */
static void expect_config_error(void (*adjust)(mesh_config_t *), const char *field) {
    mesh_config_t *config = mesh_config_default();
    if (config == NULL) {
        CHECK(config != NULL);
        return;
    }
    CHECK_OK(mesh_config_set_node_id(config, "bad-config"));
    CHECK_OK(mesh_config_set_host(config, "127.0.0.1"));
    adjust(config);
    mesh_node_t *sentinel = (mesh_node_t *)&sentinel;
    mesh_node_t *node = sentinel;
    CHECK_RC(MESH_RESULT_INVALID_CONFIG, mesh_node_new(config, &node));
    CHECK_MESSAGE(field);
    CHECK(node == sentinel);
    mesh_config_free(config);
}

static void empty_node_id(mesh_config_t *c) { mesh_config_set_node_id(c, ""); }
static void zero_sync_interval(mesh_config_t *c) { mesh_config_set_sync_interval_ms(c, 0); }
static void short_peer_timeout(mesh_config_t *c) {
    mesh_config_set_heartbeat_interval_ms(c, 1000);
    mesh_config_set_peer_timeout_ms(c, 500);
}
static void tiny_datagram(mesh_config_t *c) { mesh_config_set_max_datagram_size(c, 10); }
static void zero_tombstone_grace(mesh_config_t *c) { mesh_config_set_tombstone_grace_ms(c, 0); }
static void huge_probed_datagram(mesh_config_t *c) {
    mesh_config_set_max_probed_datagram_size(c, 70000);
}
static void too_many_retries(mesh_config_t *c) { mesh_config_set_max_retries(c, 31); }
static void empty_cluster(mesh_config_t *c) { mesh_config_set_cluster(c, ""); }

static void test_invalid_config_names_the_field(void) {
    expect_config_error(empty_node_id, "`node_id`");
    expect_config_error(zero_sync_interval, "`sync_interval`");
    expect_config_error(short_peer_timeout, "`peer_timeout`");
    expect_config_error(tiny_datagram, "`max_datagram_size`");
    expect_config_error(zero_tombstone_grace, "`tombstone_grace`");
    expect_config_error(huge_probed_datagram, "`max_probed_datagram_size`");
    expect_config_error(too_many_retries, "`max_retries`");
    expect_config_error(empty_cluster, "`cluster`");

    /* The node id has no default. */
    mesh_config_t *config = mesh_config_default();
    mesh_node_t *node = NULL;
    CHECK_RC(MESH_RESULT_INVALID_CONFIG, mesh_node_new(config, &node));
    CHECK_MESSAGE("invalid config field `node_id`: must not be empty");
    CHECK(node == NULL);
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_config_set_max_value_size(config, 0));
    mesh_config_free(config);
}

static void test_invalid_json(void) {
    mesh_node_t *node = test_node("json");
    REQUIRE(node != NULL);
    CHECK_OK(mesh_node_set_i64(node, "k", 5));
    const char *bad[] = {"", "{", "[1,", "nul", "9223372036854775808",
                         "{\"$bytes\": \"!!\"}", "1 2"};
    for (size_t n = 0; n < sizeof bad / sizeof bad[0]; n++) {
        CHECK_RC(MESH_RESULT_INVALID_JSON, mesh_node_set_json(node, "k", bad[n]));
    }
    CHECK_RC(MESH_RESULT_INVALID_JSON, mesh_node_set_json(node, "k", "9223372036854775808"));
    CHECK_MESSAGE("outside the signed 64-bit range");
    CHECK_RC(MESH_RESULT_INVALID_JSON, mesh_node_set_json(node, "k", "{\"$bytes\": \"!!\"}"));
    CHECK_MESSAGE("base64");
    int64_t i = 0;
    CHECK_OK(mesh_node_get_i64(node, "k", &i));
    CHECK(i == 5);
    mesh_node_free(node);
}

/* `depth` arrays nested around 1, in a buffer the caller frees. */
static char *nested_json(size_t depth) {
    char *text = malloc(2 * depth + 2);
    if (text == NULL) {
        return NULL;
    }
    memset(text, '[', depth);
    text[depth] = '1';
    memset(text + depth + 1, ']', depth);
    text[2 * depth + 1] = '\0';
    return text;
}

static void test_deeply_nested_json(void) {
    mesh_node_t *node = test_node("deep_json");
    REQUIRE(node != NULL);
    CHECK_OK(mesh_node_set_i64(node, "k", 5));
    const size_t depths[] = {MESH_MAX_VALUE_DEPTH + 1, 127, 128, 20000};
    for (size_t n = 0; n < sizeof depths / sizeof depths[0]; n++) {
        char *text = nested_json(depths[n]);
        REQUIRE(text != NULL);
        CHECK_RC(MESH_RESULT_INVALID_JSON, mesh_node_set_json(node, "k", text));
        CHECK_MESSAGE("nested more than 100 levels deep");
        free(text);
    }
    int64_t i = 0;
    CHECK_OK(mesh_node_get_i64(node, "k", &i));
    CHECK(i == 5);

    char *at_limit = nested_json(MESH_MAX_VALUE_DEPTH);
    REQUIRE(at_limit != NULL);
    CHECK_OK(mesh_node_set_json(node, "k", at_limit));
    char *json = NULL;
    CHECK_OK(mesh_node_get_json(node, "k", NULL, &json));
    CHECK(json != NULL && strcmp(json, at_limit) == 0);
    mesh_string_free(json);
    free(at_limit);
    mesh_node_free(node);
}

static void test_port_in_use_and_unresolvable_host(void) {
    mesh_node_t *first = test_node("first");
    REQUIRE(first != NULL);
    uint16_t port = node_port(first);
    mesh_config_t *config = mesh_config_default();
    CHECK_OK(mesh_config_set_node_id(config, "second"));
    CHECK_OK(mesh_config_set_host(config, "127.0.0.1"));
    CHECK_OK(mesh_config_set_port(config, port));
    mesh_node_t *second = NULL;
    CHECK_RC(MESH_RESULT_BIND, mesh_node_new(config, &second));
    char expected[64];
    snprintf(expected, sizeof expected, "127.0.0.1:%u", (unsigned)port);
    CHECK_MESSAGE(expected);
    CHECK(second == NULL);

    /* Once the first node is stopped, its port is free again. */
    CHECK_OK(mesh_node_start(first));
    CHECK_OK(mesh_node_stop(first));
    CHECK_OK(mesh_node_new(config, &second));
    mesh_config_free(config);
    CHECK(second != NULL && node_port(second) == port);

    /* An empty host name resolves to nothing, without touching the network. */
    CHECK_RC(MESH_RESULT_RESOLVE, mesh_node_add_bootstrap_peer(first, "", 5000));
    CHECK_MESSAGE("cannot resolve");
    mesh_node_free(second);
    mesh_node_free(first);
}

static void *fail_on_another_thread(void *arg) {
    char *seen = arg;
    /* A fresh thread starts without a message, whatever other threads did. */
    snprintf(seen, 128, "%s", mesh_last_error_message());
    mesh_node_start(NULL);
    snprintf(seen + 128, 128, "%s", mesh_last_error_message());
    return NULL;
}

static void test_last_error_is_per_thread(void) {
    mesh_config_t *config = mesh_config_default();
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_config_set_port(config, 99999));
    mesh_config_free(config);
    char seen[256] = {0};
    pthread_t thread;
    REQUIRE(pthread_create(&thread, NULL, fail_on_another_thread, seen) == 0);
    pthread_join(thread, NULL);
    CHECK_STR("", seen);
    CHECK_STR("`node` must not be NULL", seen + 128);
    /* This thread's message is unchanged by the other thread's failure. */
    CHECK_MESSAGE("got 99999");
}

int main(void) {
    const test_case tests[] = {
        {"null_arguments", test_null_arguments},
        {"invalid_utf8", test_invalid_utf8},
        {"out_of_range_ports", test_out_of_range_ports},
        {"invalid_config_names_the_field", test_invalid_config_names_the_field},
        {"invalid_json", test_invalid_json},
        {"deeply_nested_json", test_deeply_nested_json},
        {"port_in_use_and_unresolvable_host", test_port_in_use_and_unresolvable_host},
        {"last_error_is_per_thread", test_last_error_is_per_thread},
    };
    return run_tests("test_errors", tests, sizeof tests / sizeof tests[0]);
}
