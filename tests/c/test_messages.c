/* User messages: sent to one peer or broadcast, delivered in order to the message
 * callback, never stored; unknown peers and oversized messages are refused. */
#include <pthread.h>

#include "harness.h"

#define MAX_SEEN 256

/* What the message callback saw. Written on the callback thread, read by the test. */
typedef struct {
    pthread_mutex_t lock;
    int count;
    char sender[32];
    char texts[MAX_SEEN][32];
    size_t large_len;
    bool large_ok;
} inbox;

static void inbox_init(inbox *in) {
    memset(in, 0, sizeof *in);
    pthread_mutex_init(&in->lock, NULL);
}

static void on_message(void *user_data, mesh_str sender_id, const uint8_t *data, size_t len) {
    inbox *in = user_data;
    pthread_mutex_lock(&in->lock);
    snprintf(in->sender, sizeof in->sender, "%.*s", (int)sender_id.len, sender_id.data);
    if (len > 1000) {
        bool ok = true;
        for (size_t i = 0; i < len; i++) {
            ok = ok && data[i] == (uint8_t)(i % 251);
        }
        in->large_len = len;
        in->large_ok = ok;
    } else if (in->count < MAX_SEEN) {
        snprintf(in->texts[in->count], sizeof in->texts[0], "%.*s", (int)len, (const char *)data);
        in->count++;
    }
    pthread_mutex_unlock(&in->lock);
}

typedef struct {
    inbox *in;
    int want;
} want_count;

static bool has_count(void *arg) {
    want_count *w = arg;
    pthread_mutex_lock(&w->in->lock);
    bool done = w->in->count >= w->want;
    pthread_mutex_unlock(&w->in->lock);
    return done;
}

static bool has_large(void *arg) {
    inbox *in = arg;
    pthread_mutex_lock(&in->lock);
    bool done = in->large_len > 0;
    pthread_mutex_unlock(&in->lock);
    return done;
}

typedef struct {
    mesh_node_t *from;
    const char *to;
} first_send;

/* Sends "m0" until the peer is known alive (the mesh forms asynchronously). */
static bool sent_first(void *arg) {
    first_send *f = arg;
    return mesh_node_send(f->from, f->to, (const uint8_t *)"m0", 2) == MESH_RESULT_OK;
}

static void test_messages_arrive_in_order_and_are_not_stored(void) {
    mesh_node_t *a = NULL, *b = NULL;
    REQUIRE(test_pair("alpha", "beta", &a, &b));
    inbox in;
    inbox_init(&in);
    CHECK_OK(mesh_node_set_message_callback(a, on_message, &in));
    first_send f = {b, "alpha"};
    CHECK(wait_until(sent_first, &f));
    char text[16];
    for (int i = 1; i < 100; i++) {
        int n = snprintf(text, sizeof text, "m%d", i);
        CHECK_OK(mesh_node_send(b, "alpha", (const uint8_t *)text, (size_t)n));
    }
    want_count w = {&in, 100};
    CHECK(wait_until(has_count, &w));
    pthread_mutex_lock(&in.lock);
    CHECK_STR("beta", in.sender);
    for (int i = 0; i < in.count; i++) {
        snprintf(text, sizeof text, "m%d", i);
        CHECK_STR(text, in.texts[i]);
    }
    pthread_mutex_unlock(&in.lock);

    /* A message of many fragments. */
    size_t len = 200 * 1000;
    uint8_t *large = malloc(len);
    REQUIRE(large != NULL);
    for (size_t i = 0; i < len; i++) {
        large[i] = (uint8_t)(i % 251);
    }
    CHECK_OK(mesh_node_send(b, "alpha", large, len));
    free(large);
    CHECK(wait_until(has_large, &in));
    pthread_mutex_lock(&in.lock);
    CHECK(in.large_len == len);
    CHECK(in.large_ok);
    pthread_mutex_unlock(&in.lock);

    size_t keys = 99;
    CHECK_OK(mesh_node_len(a, &keys));
    CHECK(keys == 0);
    CHECK_OK(mesh_node_set_message_callback(a, NULL, NULL));
    mesh_node_free(b);
    mesh_node_free(a);
}

static void test_broadcast_reaches_every_peer(void) {
    mesh_node_t *a = NULL, *b = NULL;
    REQUIRE(test_pair("hub", "spoke", &a, &b));
    inbox in;
    inbox_init(&in);
    CHECK_OK(mesh_node_set_message_callback(b, on_message, &in));
    first_send f = {a, "spoke"};
    CHECK(wait_until(sent_first, &f));
    size_t sent = 0;
    CHECK_OK(mesh_node_broadcast(a, (const uint8_t *)"to all", 6, &sent));
    CHECK(sent == 1);
    CHECK_OK(mesh_node_broadcast(a, (const uint8_t *)"again", 5, NULL));
    want_count w = {&in, 3};
    CHECK(wait_until(has_count, &w));
    pthread_mutex_lock(&in.lock);
    CHECK_STR("hub", in.sender);
    CHECK_STR("to all", in.texts[1]);
    CHECK_STR("again", in.texts[2]);
    pthread_mutex_unlock(&in.lock);
    mesh_node_free(b);
    mesh_node_free(a);
}

static void test_refusals_have_their_codes(void) {
    mesh_config_t *config = mesh_config_default();
    REQUIRE(config != NULL);
    CHECK_OK(mesh_config_set_node_id(config, "lonely"));
    CHECK_OK(mesh_config_set_host(config, "127.0.0.1"));
    CHECK_OK(mesh_config_set_max_value_size(config, 100));
    mesh_node_t *node = NULL;
    CHECK_OK(mesh_node_new(config, &node));
    mesh_config_free(config);
    REQUIRE(node != NULL);
    CHECK_OK(mesh_node_start(node));
    CHECK_RC(MESH_RESULT_PEER_NOT_FOUND, mesh_node_send(node, "nobody", (const uint8_t *)"x", 1));
    CHECK_MESSAGE("nobody");
    uint8_t big[101] = {0};
    CHECK_RC(MESH_RESULT_MESSAGE_TOO_LARGE, mesh_node_send(node, "nobody", big, sizeof big));
    CHECK_RC(MESH_RESULT_MESSAGE_TOO_LARGE, mesh_node_broadcast(node, big, sizeof big, NULL));
    size_t sent = 99;
    CHECK_OK(mesh_node_broadcast(node, big, 100, &sent));
    CHECK(sent == 0);
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_send(node, NULL, big, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_send(node, "x", NULL, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_send(NULL, "x", big, 1));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_node_set_message_callback(NULL, on_message, NULL));
    CHECK_OK(mesh_node_stop(node));
    CHECK_RC(MESH_RESULT_STOPPED, mesh_node_send(node, "nobody", (const uint8_t *)"x", 1));
    mesh_node_free(node);
}

int main(void) {
    const test_case tests[] = {
        {"messages_arrive_in_order_and_are_not_stored",
         test_messages_arrive_in_order_and_are_not_stored},
        {"broadcast_reaches_every_peer", test_broadcast_reaches_every_peer},
        {"refusals_have_their_codes", test_refusals_have_their_codes},
    };
    return run_tests("messages", tests, sizeof tests / sizeof tests[0]);
}
