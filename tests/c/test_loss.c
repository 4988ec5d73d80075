/* Unreliable networks through fault injection: 30% loss in both directions still
 * converges, a partition holds writes back until it heals, and delay only delays. */
#include "harness.h"

#define KEYS_PER_NODE 100
/* Long enough, and random enough that compression cannot shrink it, that one node's
 * writes fill a few dozen datagrams: a handful of datagrams would let the run dodge
 * the loss by chance. */
#define VALUE_LEN 400

/* A deterministic, incompressible printable string for key number `i`. */
static void value_for(int i, char out[VALUE_LEN + 1]) {
    uint64_t x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(i + 1);
    for (int c = 0; c < VALUE_LEN; c++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[c] = (char)('!' + (x % 94));
    }
    out[VALUE_LEN] = '\0';
}

typedef struct {
    const mesh_node_t *a;
    const mesh_node_t *b;
    size_t expected;
} pair_len;

/* Both nodes hold `expected` keys and the same data. */
static bool converged(void *arg) {
    pair_len *p = arg;
    size_t la = 0, lb = 0;
    if (mesh_node_len(p->a, &la) != MESH_RESULT_OK || mesh_node_len(p->b, &lb) != MESH_RESULT_OK ||
        la != p->expected || lb != p->expected) {
        return false;
    }
    char *ja = NULL, *jb = NULL;
    bool same = mesh_node_get_all_json(p->a, &ja) == MESH_RESULT_OK &&
                mesh_node_get_all_json(p->b, &jb) == MESH_RESULT_OK && strcmp(ja, jb) == 0;
    mesh_string_free(ja);
    mesh_string_free(jb);
    return same;
}

static void test_converges_under_30_percent_loss(void) {
    mesh_node_t *a = test_node("lossy-a");
    mesh_node_t *b = test_node("lossy-b");
    if (a == NULL || b == NULL) {
        mesh_node_free(a);
        mesh_node_free(b);
        REQUIRE(a != NULL && b != NULL);
    }
    CHECK_OK(mesh_node_set_loss(a, 0.3));
    CHECK_OK(mesh_node_set_loss(b, 0.3));
    CHECK_OK(mesh_node_add_bootstrap_peer(b, "127.0.0.1", node_port(a)));
    CHECK_OK(mesh_node_start(a));
    CHECK_OK(mesh_node_start(b));

    char key[32];
    char value[VALUE_LEN + 1];
    for (int i = 0; i < KEYS_PER_NODE; i++) {
        snprintf(key, sizeof key, "a-%03d", i);
        CHECK_OK(mesh_node_set_i64(a, key, i));
        snprintf(key, sizeof key, "b-%03d", i);
        value_for(i, value);
        CHECK_OK(mesh_node_set_string(b, key, value));
    }
    pair_len p = {a, b, 2 * KEYS_PER_NODE};
    CHECK(wait_until(converged, &p));

    /* Spot-check values on the far side. */
    int64_t i = -1;
    CHECK_OK(mesh_node_get_i64(b, "a-042", &i));
    CHECK(i == 42);
    char *text = NULL;
    CHECK_OK(mesh_node_get_string(a, "b-099", &text, NULL));
    value_for(99, value);
    CHECK_STR(value, text);
    mesh_string_free(text);

    /* The loss really happened. (b's 40 KB of values alone take over 30 datagrams, too
     * few to pin the rate down; the rate itself is tested in the core.) */
    mesh_fault_stats sa, sb;
    CHECK_OK(mesh_node_fault_stats(a, &sa));
    CHECK_OK(mesh_node_fault_stats(b, &sb));
    uint64_t sent = sa.packets_sent + sb.packets_sent;
    uint64_t dropped = sa.packets_dropped + sb.packets_dropped;
    printf("     %llu of %llu datagrams dropped\n", (unsigned long long)dropped,
           (unsigned long long)sent);
    CHECK(sent >= 20);
    CHECK(dropped > 0);
    CHECK(dropped < sent);
    mesh_node_free(b);
    mesh_node_free(a);
}

typedef struct {
    const mesh_node_t *node;
    const char *key;
} key_ref;

static bool has_key(void *arg) {
    key_ref *k = arg;
    bool b;
    return mesh_node_get_bool(k->node, k->key, &b) == MESH_RESULT_OK;
}

static void test_partition_holds_writes_until_it_heals(void) {
    mesh_node_t *a, *b;
    bool paired = test_pair("part-a", "part-b", &a, &b);
    if (!paired) {
        mesh_node_free(a);
        mesh_node_free(b);
    }
    REQUIRE(paired);
    CHECK_OK(mesh_node_set_bool(a, "before", true));
    key_ref before = {b, "before"};
    CHECK(wait_until(has_key, &before));

    CHECK_OK(mesh_node_partition_add(a, "127.0.0.1", node_port(b)));
    CHECK_OK(mesh_node_partition_add(b, "127.0.0.1", node_port(a)));
    CHECK_OK(mesh_node_set_bool(a, "during", true));
    /* Several push and sync rounds pass without the write crossing. */
    sleep_ms(1000);
    key_ref during = {b, "during"};
    CHECK(!has_key(&during));
    mesh_fault_stats stats;
    CHECK_OK(mesh_node_fault_stats(a, &stats));
    CHECK(stats.packets_partitioned > 0);

    CHECK_OK(mesh_node_partition_clear(a));
    CHECK_OK(mesh_node_partition_clear(b));
    CHECK(wait_until(has_key, &during));
    mesh_node_free(b);
    mesh_node_free(a);
}

static void test_delay_only_delays(void) {
    mesh_node_t *a, *b;
    bool paired = test_pair("slow-a", "slow-b", &a, &b);
    if (!paired) {
        mesh_node_free(a);
        mesh_node_free(b);
    }
    REQUIRE(paired);
    CHECK_OK(mesh_node_set_delay(a, 50, 10));
    double start = now_seconds();
    CHECK_OK(mesh_node_set_bool(a, "slow", true));
    key_ref slow = {b, "slow"};
    CHECK(wait_until(has_key, &slow));
    CHECK(now_seconds() - start >= 0.05);
    mesh_fault_stats stats;
    CHECK_OK(mesh_node_fault_stats(a, &stats));
    CHECK(stats.packets_delayed > 0);
    CHECK_OK(mesh_node_faults_clear(a));
    mesh_node_free(b);
    mesh_node_free(a);
}

int main(void) {
    const test_case tests[] = {
        {"converges_under_30_percent_loss", test_converges_under_30_percent_loss},
        {"partition_holds_writes_until_it_heals", test_partition_holds_writes_until_it_heals},
        {"delay_only_delays", test_delay_only_delays},
    };
    return run_tests("test_loss", tests, sizeof tests / sizeof tests[0]);
}
