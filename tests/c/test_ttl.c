/* Keys with a TTL from C: mesh_node_set_ttl validates its TTL, the key expires on every
 * node (read as missing, reported to the state callback as a delete), and a later write
 * without a TTL is permanent. */
#include <pthread.h>

#include "harness.h"

typedef struct {
    pthread_mutex_t lock;
    int deletes;
    char last_key[64];
    bool last_value_null;
} seen;

static void record(void *user_data, mesh_str key, const mesh_value_t *value,
                   mesh_change_origin origin) {
    seen *s = user_data;
    pthread_mutex_lock(&s->lock);
    if (origin == MESH_CHANGE_ORIGIN_DELETE) {
        s->deletes++;
        snprintf(s->last_key, sizeof s->last_key, "%.*s", (int)key.len, key.data);
        s->last_value_null = value == NULL;
    }
    pthread_mutex_unlock(&s->lock);
}

static int seen_deletes(seen *s) {
    pthread_mutex_lock(&s->lock);
    int deletes = s->deletes;
    pthread_mutex_unlock(&s->lock);
    return deletes;
}

typedef struct {
    mesh_node_t *node;
    const char *key;
} lookup;

static bool is_missing(void *arg) {
    lookup *l = arg;
    int64_t got = 0;
    return mesh_node_get_i64(l->node, l->key, &got) == MESH_RESULT_NOT_FOUND;
}

static bool is_present(void *arg) {
    return !is_missing(arg);
}

static bool is_two(void *arg) {
    lookup *l = arg;
    int64_t got = 0;
    return mesh_node_get_i64(l->node, l->key, &got) == MESH_RESULT_OK && got == 2;
}

static void test_ttls_are_validated(void) {
    mesh_node_t *node = test_node("ttl-args");
    REQUIRE(node != NULL);
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_node_set_ttl(node, "k", "1", 0));
    CHECK_MESSAGE("ttl_ms");
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT,
             mesh_node_set_ttl(node, "k", "1", 365ULL * 24 * 3600 * 1000 + 1));
    CHECK_RC(MESH_RESULT_INVALID_JSON, mesh_node_set_ttl(node, "k", "{nope", 1000));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_ttl(node, NULL, "1", 1000));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_ttl(node, "k", NULL, 1000));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_ttl(NULL, "k", "1", 1000));
    lookup l = {node, "k"};
    CHECK(is_missing(&l)); /* nothing was written */
    CHECK_OK(mesh_node_set_ttl(node, "k", "1", 365ULL * 24 * 3600 * 1000));
    CHECK(is_present(&l));
    mesh_node_free(node);
}

static void test_a_key_expires_as_a_delete(void) {
    mesh_node_t *node = test_node("ttl-local");
    REQUIRE(node != NULL);
    seen s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    CHECK_OK(mesh_node_set_state_callback(node, record, &s));
    CHECK_OK(mesh_node_start(node));
    CHECK_OK(mesh_node_set_ttl(node, "session", "7", 200));
    lookup l = {node, "session"};
    CHECK(wait_until(is_missing, &l));
    /* The network thread reports the expiry when its timer fires, or a read does. */
    double deadline = now_seconds() + patience();
    while (seen_deletes(&s) < 1 && now_seconds() < deadline) {
        sleep_ms(10);
    }
    pthread_mutex_lock(&s.lock);
    CHECK(s.deletes == 1);
    CHECK_STR("session", s.last_key);
    CHECK(s.last_value_null);
    pthread_mutex_unlock(&s.lock);
    CHECK_OK(mesh_node_set_state_callback(node, NULL, NULL));
    mesh_node_free(node);
    pthread_mutex_destroy(&s.lock);
}

static void test_a_key_expires_on_every_node_unless_rewritten(void) {
    mesh_node_t *a, *b;
    bool paired = test_pair("ttl-a", "ttl-b", &a, &b);
    if (!paired) {
        mesh_node_free(a);
        mesh_node_free(b);
    }
    REQUIRE(paired);
    /* Long enough to replicate even under valgrind, then shortened by a new write. */
    CHECK_OK(mesh_node_set_ttl(a, "lease", "1", 600000));
    CHECK_OK(mesh_node_set_ttl(a, "kept", "1", 600000));
    lookup lease_b = {b, "lease"}, kept_b = {b, "kept"};
    CHECK(wait_until(is_present, &lease_b));
    CHECK(wait_until(is_present, &kept_b));
    CHECK_OK(mesh_node_set_ttl(a, "lease", "2", 300));
    CHECK_OK(mesh_node_set_ttl(a, "kept", "2", 5000));
    /* A later write without a TTL makes "kept" permanent (later: made once b holds the
     * short-lived write, which it then beats). */
    CHECK(wait_until(is_two, &kept_b));
    CHECK_OK(mesh_node_set_i64(b, "kept", 3));
    lookup lease_a = {a, "lease"};
    CHECK(wait_until(is_missing, &lease_a));
    CHECK(wait_until(is_missing, &lease_b));
    sleep_ms(5500); /* past the expiry "kept" had */
    int64_t got = 0;
    CHECK_OK(mesh_node_get_i64(b, "kept", &got));
    CHECK(got == 3);
    mesh_node_free(a);
    mesh_node_free(b);
}

int main(void) {
    const test_case tests[] = {
        {"ttls_are_validated", test_ttls_are_validated},
        {"a_key_expires_as_a_delete", test_a_key_expires_as_a_delete},
        {"a_key_expires_on_every_node_unless_rewritten",
         test_a_key_expires_on_every_node_unless_rewritten},
    };
    return run_tests("ttl", tests, sizeof tests / sizeof tests[0]);
}
