/* Two nodes in one process over loopback: every value type replicates, deletes
 * replicate, later writes win, and callbacks arrive on the library's callback thread. */
#include <pthread.h>

#include "harness.h"

typedef struct {
    const mesh_node_t *node;
    const char *key;
    const char *json; /* NULL: wait until the key is gone */
} expectation;

static bool key_has_json(void *arg) {
    const expectation *e = arg;
    char *json = NULL;
    mesh_result rc = mesh_node_get_json(e->node, e->key, NULL, &json);
    bool done = e->json == NULL ? rc == MESH_RESULT_NOT_FOUND
                                : rc == MESH_RESULT_OK && strcmp(json, e->json) == 0;
    mesh_string_free(json);
    return done;
}

static bool wait_for_json(const mesh_node_t *node, const char *key, const char *json) {
    expectation e = {node, key, json};
    bool done = wait_until(key_has_json, &e);
    if (!done) {
        fprintf(stderr, "  timed out waiting for %s = %s\n", key, json ? json : "(deleted)");
    }
    return done;
}

static void test_every_type_replicates(void) {
    mesh_node_t *a, *b;
    bool paired = test_pair("alpha", "beta", &a, &b);
    if (!paired) {
        mesh_node_free(a);
        mesh_node_free(b);
    }
    REQUIRE(paired);

    const uint8_t raw[] = {0, 1, 2, 255};
    CHECK_OK(mesh_node_set_string(a, "string", "h\xc3\xa9llo"));
    CHECK_OK(mesh_node_set_bytes(a, "bytes", raw, sizeof raw));
    CHECK_OK(mesh_node_set_i64(a, "int", -42));
    CHECK_OK(mesh_node_set_f64(a, "float", 72.5));
    CHECK_OK(mesh_node_set_bool(a, "bool", false));
    CHECK_OK(mesh_node_set_null(a, "null"));
    CHECK_OK(mesh_node_set_json(a, "list", "[1,\"two\",null]"));
    CHECK_OK(mesh_node_set_json(a, "map", "{\"k\":{\"$bytes\":\"AQ==\"},\"n\":[]}"));

    CHECK(wait_for_json(b, "string", "\"h\xc3\xa9llo\""));
    CHECK(wait_for_json(b, "bytes", "{\"$bytes\":\"AAEC/w==\"}"));
    CHECK(wait_for_json(b, "int", "-42"));
    CHECK(wait_for_json(b, "float", "72.5"));
    CHECK(wait_for_json(b, "bool", "false"));
    CHECK(wait_for_json(b, "null", "null"));
    CHECK(wait_for_json(b, "list", "[1,\"two\",null]"));
    CHECK(wait_for_json(b, "map", "{\"k\":{\"$bytes\":\"AQ==\"},\"n\":[]}"));

    /* Types survive the trip, not only their JSON form. */
    mesh_value_type type = MESH_VALUE_TYPE_NULL;
    char *json = NULL;
    CHECK_OK(mesh_node_get_json(b, "bytes", &type, &json));
    CHECK(type == MESH_VALUE_TYPE_BYTES);
    mesh_string_free(json);
    double f = 0;
    CHECK_OK(mesh_node_get_f64(b, "float", &f));
    CHECK(f == 72.5);

    /* Deletes replicate the other way too. */
    bool existed = false;
    CHECK_OK(mesh_node_delete(b, "int", &existed));
    CHECK(existed);
    CHECK(wait_for_json(a, "int", NULL));

    /* A write made after seeing another write wins on every node. */
    CHECK_OK(mesh_node_set_i64(b, "string", 2));
    CHECK(wait_for_json(a, "string", "2"));
    CHECK(wait_for_json(b, "string", "2"));

    mesh_status status;
    CHECK_OK(mesh_node_status(a, &status));
    CHECK(status.running);
    CHECK(status.alive_peers >= 1);
    CHECK(status.datagrams_received > 0);
    CHECK(status.data_keys == 7);

    mesh_node_free(b);
    mesh_node_free(a);
}

/* What the callbacks saw; written on the callback thread, read on the main thread. */
typedef struct {
    pthread_mutex_t lock;
    pthread_t main_thread;
    pthread_t callback_thread;
    int seen_callback_thread;
    const mesh_node_t *node;
    int state_calls;
    int wrong_thread;
    int bad_thread_name;
    int synced_hello;    /* "greeting" = "hello" arriving from the peer */
    int local_sets;      /* origin SET */
    int local_deletes;   /* origin DELETE with a NULL value */
    int get_inside_ok;   /* mesh_node_get from inside the callback worked */
    int peers_discovered;
    int peers_left;
    int peers_failed;
    char peer_id[64];
    char left_id[64];
} observations;

static void check_thread(observations *obs) {
    if (pthread_equal(pthread_self(), obs->main_thread)) {
        obs->wrong_thread++;
    }
    /* Every callback comes from one thread, the one the library names "mesh-c:<node id>"
     * (its network thread is "mesh-n:<node id>"). */
    if (!obs->seen_callback_thread) {
        obs->callback_thread = pthread_self();
        obs->seen_callback_thread = 1;
    } else if (!pthread_equal(pthread_self(), obs->callback_thread)) {
        obs->wrong_thread++;
    }
    char name[32] = {0};
    if (pthread_getname_np(pthread_self(), name, sizeof name) != 0 ||
        strncmp(name, "mesh-c:", 7) != 0) {
        fprintf(stderr, "  callback on thread \"%s\"\n", name);
        obs->bad_thread_name++;
    }
}

static void on_state(void *user_data, mesh_str key, const mesh_value_t *value,
                     mesh_change_origin origin) {
    observations *obs = user_data;
    pthread_mutex_lock(&obs->lock);
    obs->state_calls++;
    check_thread(obs);
    if (origin == MESH_CHANGE_ORIGIN_SYNC && strcmp(key.data, "greeting") == 0) {
        mesh_str text = {0};
        if (mesh_value_get_string(value, &text) == MESH_RESULT_OK &&
            strcmp(text.data, "hello") == 0 && text.len == 5) {
            obs->synced_hello++;
        }
        /* Calling back into the node from its own callback is allowed. */
        mesh_value_t *copy = NULL;
        if (mesh_node_get(obs->node, "greeting", &copy) == MESH_RESULT_OK &&
            mesh_value_get_type(copy) == MESH_VALUE_TYPE_STRING) {
            obs->get_inside_ok++;
        }
        mesh_value_free(copy);
    }
    if (origin == MESH_CHANGE_ORIGIN_SET && strcmp(key.data, "local") == 0 && value != NULL) {
        obs->local_sets++;
    }
    if (origin == MESH_CHANGE_ORIGIN_DELETE && strcmp(key.data, "local") == 0 && value == NULL) {
        obs->local_deletes++;
    }
    pthread_mutex_unlock(&obs->lock);
}

static void on_peer(void *user_data, mesh_peer_event event, mesh_str node_id, mesh_str addr) {
    observations *obs = user_data;
    pthread_mutex_lock(&obs->lock);
    check_thread(obs);
    if (event == MESH_PEER_EVENT_DISCOVERED && strncmp(addr.data, "127.0.0.1:", 10) == 0) {
        obs->peers_discovered++;
        snprintf(obs->peer_id, sizeof obs->peer_id, "%.*s", (int)node_id.len, node_id.data);
    }
    if (event == MESH_PEER_EVENT_LEFT) {
        obs->peers_left++;
        snprintf(obs->left_id, sizeof obs->left_id, "%.*s", (int)node_id.len, node_id.data);
    }
    if (event == MESH_PEER_EVENT_FAILED) {
        obs->peers_failed++;
    }
    pthread_mutex_unlock(&obs->lock);
}

static int read_count(observations *obs, const int *field) {
    pthread_mutex_lock(&obs->lock);
    int value = *field;
    pthread_mutex_unlock(&obs->lock);
    return value;
}

typedef struct {
    observations *obs;
    const int *field;
    int at_least;
} count_wait;

static bool count_reached(void *arg) {
    count_wait *w = arg;
    return read_count(w->obs, w->field) >= w->at_least;
}

static bool wait_count(observations *obs, const int *field, int at_least) {
    count_wait w = {obs, field, at_least};
    return wait_until(count_reached, &w);
}

static void test_callbacks_run_on_the_callback_thread(void) {
    observations obs;
    memset(&obs, 0, sizeof obs);
    pthread_mutex_init(&obs.lock, NULL);
    obs.main_thread = pthread_self();

    mesh_node_t *a = test_node("alpha");
    mesh_node_t *b = test_node("beta");
    if (a == NULL || b == NULL) {
        mesh_node_free(a);
        mesh_node_free(b);
        REQUIRE(a != NULL && b != NULL);
    }
    obs.node = b;
    CHECK_OK(mesh_node_set_state_callback(b, on_state, &obs));
    CHECK_OK(mesh_node_set_peer_callback(b, on_peer, &obs));
    CHECK_OK(mesh_node_add_bootstrap_peer(b, "127.0.0.1", node_port(a)));
    CHECK_OK(mesh_node_start(a));
    CHECK_OK(mesh_node_start(b));

    CHECK(wait_count(&obs, &obs.peers_discovered, 1));
    pthread_mutex_lock(&obs.lock);
    CHECK_STR("alpha", obs.peer_id);
    pthread_mutex_unlock(&obs.lock);

    CHECK_OK(mesh_node_set_string(a, "greeting", "hello"));
    CHECK(wait_count(&obs, &obs.synced_hello, 1));
    CHECK(wait_count(&obs, &obs.get_inside_ok, 1));

    CHECK_OK(mesh_node_set_i64(b, "local", 1));
    CHECK_OK(mesh_node_delete(b, "local", NULL));
    CHECK(wait_count(&obs, &obs.local_sets, 1));
    CHECK(wait_count(&obs, &obs.local_deletes, 1));

    /* Once removal returns, the callback is never called again. */
    CHECK_OK(mesh_node_set_state_callback(b, NULL, NULL));
    int calls = read_count(&obs, &obs.state_calls);
    CHECK_OK(mesh_node_set_i64(b, "after-removal", 1));
    CHECK_OK(mesh_node_set_i64(a, "after-removal-remote", 1));
    CHECK(wait_for_json(b, "after-removal-remote", "1"));
    sleep_ms(200);
    CHECK(read_count(&obs, &obs.state_calls) == calls);

    /* A node that stops says so: its peer reports it left, not failed. */
    CHECK_OK(mesh_node_stop(a));
    CHECK(wait_count(&obs, &obs.peers_left, 1));
    pthread_mutex_lock(&obs.lock);
    CHECK_STR("alpha", obs.left_id);
    pthread_mutex_unlock(&obs.lock);
    CHECK(read_count(&obs, &obs.peers_failed) == 0);

    CHECK(read_count(&obs, &obs.wrong_thread) == 0);
    CHECK(read_count(&obs, &obs.bad_thread_name) == 0);

    mesh_node_free(b);
    mesh_node_free(a);
    pthread_mutex_destroy(&obs.lock);
}

typedef struct {
    const mesh_node_t *node;
    mesh_result stop_result;
    int stopped;
} stopper;

static void stop_on_signal(void *user_data, mesh_str key, const mesh_value_t *value,
                           mesh_change_origin origin) {
    stopper *s = user_data;
    (void)value;
    if (origin == MESH_CHANGE_ORIGIN_SYNC && strcmp(key.data, "stop-now") == 0 && !s->stopped) {
        s->stop_result = mesh_node_stop(s->node);
        s->stopped = 1;
    }
}

static bool node_stopped(void *arg) { return !mesh_node_is_running(arg); }

static void test_a_callback_may_stop_its_node(void) {
    mesh_node_t *a, *b;
    bool paired = test_pair("alpha", "beta", &a, &b);
    if (!paired) {
        mesh_node_free(a);
        mesh_node_free(b);
    }
    REQUIRE(paired);
    stopper s = {b, MESH_RESULT_PANIC, 0};
    CHECK_OK(mesh_node_set_state_callback(b, stop_on_signal, &s));
    CHECK_OK(mesh_node_set_bool(a, "stop-now", true));
    CHECK(wait_until(node_stopped, b));
    /* mesh_node_free waits for the callback, so reading `s` afterwards is race-free. */
    mesh_node_free(b);
    CHECK(s.stopped == 1);
    CHECK(s.stop_result == MESH_RESULT_OK);
    mesh_node_free(a);
}

int main(void) {
    const test_case tests[] = {
        {"every_type_replicates", test_every_type_replicates},
        {"callbacks_run_on_the_callback_thread", test_callbacks_run_on_the_callback_thread},
        {"a_callback_may_stop_its_node", test_a_callback_may_stop_its_node},
    };
    return run_tests("test_replication", tests, sizeof tests / sizeof tests[0]);
}
