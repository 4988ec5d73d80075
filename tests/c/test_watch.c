/* A local write returns once its callbacks have run, and watches follow the keys under
 * a prefix: local and remote changes, cancellation, bad arguments. */
#include <pthread.h>

#include "harness.h"

/* What a callback saw. Written on the callback thread, read by the test after the
 * write returned: the lock makes the handover visible to valgrind's race checks too. */
typedef struct {
    pthread_mutex_t lock;
    int calls;
    char last_key[64];
    char last_json[64];
    mesh_change_origin last_origin;
    long delay_ms;
    mesh_node_t *write_back; /* if set: the callback writes "echo" to this node */
    mesh_watch_t *cancel_self; /* if set: the callback cancels this watch */
} seen;

static void seen_init(seen *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
}

static int seen_calls(seen *s) {
    pthread_mutex_lock(&s->lock);
    int calls = s->calls;
    pthread_mutex_unlock(&s->lock);
    return calls;
}

static void record(void *user_data, mesh_str key, const mesh_value_t *value,
                   mesh_change_origin origin) {
    seen *s = user_data;
    if (s->delay_ms > 0) {
        sleep_ms(s->delay_ms); /* a slow application callback */
    }
    mesh_str json = {"(deleted)", 9};
    if (value != NULL && mesh_value_to_json(value, &json) != MESH_RESULT_OK) {
        json = (mesh_str){"(bad value)", 11};
    }
    pthread_mutex_lock(&s->lock);
    s->calls++;
    snprintf(s->last_key, sizeof s->last_key, "%.*s", (int)key.len, key.data);
    snprintf(s->last_json, sizeof s->last_json, "%.*s", (int)json.len, json.data);
    s->last_origin = origin;
    pthread_mutex_unlock(&s->lock);
    if (s->write_back != NULL && strncmp(key.data, "echo", key.len) != 0) {
        /* On the callback thread: must return at once instead of waiting for itself. */
        mesh_node_set_i64(s->write_back, "echo", 1);
    }
    if (s->cancel_self != NULL) {
        mesh_watch_cancel(s->cancel_self);
    }
}

static void test_a_write_returns_after_its_state_callback_ran(void) {
    mesh_node_t *node = test_node("timing");
    REQUIRE(node != NULL);
    seen s;
    seen_init(&s);
    s.delay_ms = 30;
    CHECK_OK(mesh_node_set_state_callback(node, record, &s));
    /* Before start and after it: the callback thread runs from creation. */
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            CHECK_OK(mesh_node_start(node));
        }
        CHECK_OK(mesh_node_set_i64(node, "temperature", 72));
        pthread_mutex_lock(&s.lock);
        CHECK(s.calls == 2 * round + 1);
        CHECK_STR("temperature", s.last_key);
        CHECK_STR("72", s.last_json);
        CHECK(s.last_origin == MESH_CHANGE_ORIGIN_SET);
        pthread_mutex_unlock(&s.lock);
        CHECK_OK(mesh_node_delete(node, "temperature", NULL));
        pthread_mutex_lock(&s.lock);
        CHECK(s.calls == 2 * round + 2);
        CHECK_STR("(deleted)", s.last_json);
        CHECK(s.last_origin == MESH_CHANGE_ORIGIN_DELETE);
        pthread_mutex_unlock(&s.lock);
    }
    mesh_node_free(node);
    pthread_mutex_destroy(&s.lock);
}

static void test_a_write_from_a_callback_does_not_wait_for_itself(void) {
    mesh_node_t *node = test_node("reentrant");
    REQUIRE(node != NULL);
    seen s;
    seen_init(&s);
    s.write_back = node;
    CHECK_OK(mesh_node_set_state_callback(node, record, &s));
    CHECK_OK(mesh_node_set_i64(node, "ping", 1));
    CHECK(seen_calls(&s) >= 1);
    double deadline = now_seconds() + patience();
    while (seen_calls(&s) < 2 && now_seconds() < deadline) {
        sleep_ms(10);
    }
    CHECK(seen_calls(&s) == 2);
    CHECK_OK(mesh_node_set_state_callback(node, NULL, NULL));
    mesh_node_free(node);
    pthread_mutex_destroy(&s.lock);
}

static void test_watches_see_only_their_prefix(void) {
    mesh_node_t *a, *b;
    bool paired = test_pair("watch-a", "watch-b", &a, &b);
    if (!paired) {
        mesh_node_free(a);
        mesh_node_free(b);
    }
    REQUIRE(paired);
    seen local, remote;
    seen_init(&local);
    seen_init(&remote);
    mesh_watch_t *on_a = NULL, *on_b = NULL;
    CHECK_OK(mesh_node_watch(a, "sensor/", record, &local, &on_a));
    CHECK_OK(mesh_node_watch(b, "sensor/", record, &remote, &on_b));

    CHECK_OK(mesh_node_set_i64(a, "sensor/temp", 21));
    /* Its watch has run when the write returns, with no state callback set. */
    pthread_mutex_lock(&local.lock);
    CHECK(local.calls == 1);
    CHECK_STR("sensor/temp", local.last_key);
    CHECK_STR("21", local.last_json);
    pthread_mutex_unlock(&local.lock);

    CHECK_OK(mesh_node_set_i64(a, "door/front", 1));
    CHECK_OK(mesh_node_set_i64(a, "sensors", 1));
    double deadline = now_seconds() + patience();
    while (seen_calls(&remote) < 1 && now_seconds() < deadline) {
        sleep_ms(10);
    }
    /* Let the later writes arrive too: none of them is under the prefix. */
    char *json = NULL;
    while (mesh_node_get_json(b, "sensors", NULL, &json) != MESH_RESULT_OK &&
           now_seconds() < deadline) {
        sleep_ms(10);
    }
    mesh_string_free(json);
    sleep_ms(100);
    CHECK(seen_calls(&local) == 1);
    pthread_mutex_lock(&remote.lock);
    CHECK(remote.calls == 1);
    CHECK_STR("sensor/temp", remote.last_key);
    CHECK(remote.last_origin == MESH_CHANGE_ORIGIN_SYNC);
    pthread_mutex_unlock(&remote.lock);

    /* Cancelled: not called again, and cancelling twice is harmless. */
    CHECK_OK(mesh_watch_cancel(on_a));
    CHECK_OK(mesh_watch_cancel(on_a));
    CHECK_OK(mesh_node_set_i64(a, "sensor/temp", 22));
    CHECK(seen_calls(&local) == 1);

    mesh_watch_free(on_a);
    mesh_watch_free(on_a); /* freeing twice is detected and ignored */
    mesh_node_free(a);
    mesh_node_free(b);
    mesh_watch_free(on_b); /* after its node: allowed */
    pthread_mutex_destroy(&local.lock);
    pthread_mutex_destroy(&remote.lock);
}

static void test_a_watch_may_cancel_itself(void) {
    mesh_node_t *node = test_node("self-cancel");
    REQUIRE(node != NULL);
    seen s;
    seen_init(&s);
    mesh_watch_t *watch = NULL;
    CHECK_OK(mesh_node_watch(node, "", record, &s, &watch));
    s.cancel_self = watch;
    CHECK_OK(mesh_node_set_i64(node, "once", 1));
    CHECK_OK(mesh_node_set_i64(node, "twice", 2));
    CHECK(seen_calls(&s) == 1);
    mesh_watch_free(watch);
    mesh_node_free(node);
    pthread_mutex_destroy(&s.lock);
}

static void test_watch_arguments_are_checked(void) {
    mesh_node_t *node = test_node("watch-args");
    REQUIRE(node != NULL);
    seen s;
    seen_init(&s);
    mesh_watch_t *watch = NULL;
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_watch(NULL, "", record, &s, &watch));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_watch(node, NULL, record, &s, &watch));
    CHECK_MESSAGE("prefix");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_watch(node, "", NULL, &s, &watch));
    CHECK_MESSAGE("callback");
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_watch(node, "", record, &s, NULL));
    CHECK_RC(MESH_RESULT_INVALID_UTF8, mesh_node_watch(node, "\xff", record, &s, &watch));
    CHECK(watch == NULL);
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_watch_cancel(NULL));
    mesh_watch_free(NULL);
    mesh_node_free(node);
    pthread_mutex_destroy(&s.lock);
}

int main(void) {
    const test_case tests[] = {
        {"a_write_returns_after_its_state_callback_ran",
         test_a_write_returns_after_its_state_callback_ran},
        {"a_write_from_a_callback_does_not_wait_for_itself",
         test_a_write_from_a_callback_does_not_wait_for_itself},
        {"watches_see_only_their_prefix", test_watches_see_only_their_prefix},
        {"a_watch_may_cancel_itself", test_a_watch_may_cancel_itself},
        {"watch_arguments_are_checked", test_watch_arguments_are_checked},
    };
    return run_tests("test_watch", tests, sizeof tests / sizeof tests[0]);
}
