/* Sealed meshes from C: a keyring in the configuration, key rotation on running nodes,
 * fingerprints only in the listing, and a node without the key kept out. */
#include "harness.h"

static bool keyed_settings(mesh_config_t *config, const void *key) {
    return mesh_config_set_host(config, "127.0.0.1") == MESH_RESULT_OK &&
           mesh_config_set_sync_interval_ms(config, 200) == MESH_RESULT_OK &&
           mesh_config_set_heartbeat_interval_ms(config, 100) == MESH_RESULT_OK &&
           mesh_config_set_peer_timeout_ms(config, 3000) == MESH_RESULT_OK &&
           (key == NULL || mesh_config_add_key(config, key, MESH_KEY_LEN) == MESH_RESULT_OK);
}

static mesh_node_t *keyed_node(const char *node_id, const uint8_t *key) {
    return node_with(node_id, keyed_settings, key);
}

typedef struct {
    const mesh_node_t *node;
    const char *key;
    int64_t value;
} has_i64;

static bool node_has_i64(void *arg) {
    const has_i64 *h = arg;
    int64_t got = 0;
    return mesh_node_get_i64(h->node, h->key, &got) == MESH_RESULT_OK && got == h->value;
}

static uint64_t unauthenticated(const mesh_node_t *node) {
    mesh_status status;
    if (mesh_node_status(node, &status) != MESH_RESULT_OK) {
        return 0;
    }
    return status.datagrams_unauthenticated;
}

static bool both_count_unauthenticated(void *arg) {
    mesh_node_t **nodes = arg;
    return unauthenticated(nodes[0]) > 0 && unauthenticated(nodes[1]) > 0;
}

static void test_argument_checks(void) {
    uint8_t key[MESH_KEY_LEN];
    CHECK_OK(mesh_generate_key(key));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_generate_key(NULL));
    mesh_config_t *config = mesh_config_default();
    REQUIRE(config != NULL);
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_config_add_key(config, key, 31));
    CHECK_MESSAGE("32 bytes");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_add_key(config, NULL, MESH_KEY_LEN));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_add_key(NULL, key, MESH_KEY_LEN));
    mesh_config_free(config);
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_install_key(NULL, key, MESH_KEY_LEN));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_list_keys_json(NULL, NULL));
}

static void test_keys_rotate_and_only_fingerprints_show(void) {
    uint8_t old_key[MESH_KEY_LEN], new_key[MESH_KEY_LEN];
    CHECK_OK(mesh_generate_key(old_key));
    CHECK_OK(mesh_generate_key(new_key));
    mesh_node_t *a = keyed_node("c-key-a", old_key);
    mesh_node_t *b = keyed_node("c-key-b", old_key);
    bool ok = a != NULL && b != NULL &&
              mesh_node_add_bootstrap_peer(b, "127.0.0.1", node_port(a)) == MESH_RESULT_OK &&
              mesh_node_start(a) == MESH_RESULT_OK && mesh_node_start(b) == MESH_RESULT_OK;
    if (!ok) {
        mesh_node_free(a);
        mesh_node_free(b);
    }
    REQUIRE(ok);

    CHECK_OK(mesh_node_set_i64(a, "before", 1));
    has_i64 before = {b, "before", 1};
    CHECK(wait_until(node_has_i64, &before));

    mesh_node_t *nodes[] = {a, b};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(mesh_node_install_key(nodes[i], new_key, MESH_KEY_LEN));
    }
    sleep_ms(1000);
    /* Each step must reach every node before the next starts: datagrams sealed under the
     * old key may still be in flight when the last node switches. */
    sleep_ms(1000);
    for (int i = 0; i < 2; i++) {
        CHECK_OK(mesh_node_use_key(nodes[i], new_key, MESH_KEY_LEN));
    }
    sleep_ms(1000);
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_node_remove_key(a, new_key, MESH_KEY_LEN));
    CHECK_MESSAGE("primary");
    for (int i = 0; i < 2; i++) {
        CHECK_OK(mesh_node_remove_key(nodes[i], old_key, MESH_KEY_LEN));
    }
    CHECK_RC(MESH_RESULT_NOT_FOUND, mesh_node_use_key(a, old_key, MESH_KEY_LEN));

    char *json = NULL;
    CHECK_OK(mesh_node_list_keys_json(a, &json));
    REQUIRE(json != NULL);
    /* One fingerprint: ["" + 16 hex digits + ""]. */
    CHECK(strlen(json) == 2 + 2 + 16);
    mesh_string_free(json);

    CHECK_OK(mesh_node_set_i64(a, "after", 2));
    has_i64 after = {b, "after", 2};
    CHECK(wait_until(node_has_i64, &after));
    CHECK(unauthenticated(a) == 0);
    CHECK(unauthenticated(b) == 0);
    mesh_node_free(a);
    mesh_node_free(b);
}

static void test_a_node_without_the_key_is_kept_out(void) {
    uint8_t key[MESH_KEY_LEN];
    CHECK_OK(mesh_generate_key(key));
    mesh_node_t *keyed = keyed_node("c-keyed", key);
    mesh_node_t *plain = keyed_node("c-plain", NULL);
    bool ok = keyed != NULL && plain != NULL &&
              mesh_node_add_bootstrap_peer(plain, "127.0.0.1", node_port(keyed)) == MESH_RESULT_OK &&
              mesh_node_add_bootstrap_peer(keyed, "127.0.0.1", node_port(plain)) == MESH_RESULT_OK &&
              mesh_node_start(keyed) == MESH_RESULT_OK && mesh_node_start(plain) == MESH_RESULT_OK;
    if (!ok) {
        mesh_node_free(keyed);
        mesh_node_free(plain);
    }
    REQUIRE(ok);
    CHECK_OK(mesh_node_set_i64(keyed, "secret", 1));
    mesh_node_t *pair[] = {keyed, plain};
    CHECK(wait_until(both_count_unauthenticated, pair));
    int64_t got = 0;
    CHECK_RC(MESH_RESULT_NOT_FOUND, mesh_node_get_i64(plain, "secret", &got));
    mesh_node_free(keyed);
    mesh_node_free(plain);
}

int main(void) {
    const test_case tests[] = {
        {"argument_checks", test_argument_checks},
        {"keys_rotate_and_only_fingerprints_show", test_keys_rotate_and_only_fingerprints_show},
        {"a_node_without_the_key_is_kept_out", test_a_node_without_the_key_is_kept_out},
    };
    return run_tests("test_keys", tests, sizeof tests / sizeof tests[0]);
}
