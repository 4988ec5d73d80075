/* Addresses: an IPv6 pair over ::1, an advertised address that peers record and gossip,
 * DNS seeds ("localhost" only: tests never look up outside names), and the errors of
 * mesh_config_set_advertise_addr and mesh_node_add_bootstrap_peer. The IPv6 test needs
 * the IPv6 loopback; without it, it fails saying so. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* Whether this machine can bind the IPv6 loopback, ::1. */
static bool have_ipv6_loopback(void) {
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd < 0) {
        return false;
    }
    struct sockaddr_in6 addr;
    memset(&addr, 0, sizeof addr);
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    bool ok = bind(fd, (const struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return ok;
}

typedef struct {
    const mesh_node_t *node;
    const char *needle;
} peers_expectation;

/* The node's peer list (JSON) contains `needle`. */
static bool peers_contain(void *arg) {
    const peers_expectation *e = arg;
    char *json = NULL;
    if (mesh_node_peers_json(e->node, &json) != MESH_RESULT_OK) {
        return false;
    }
    bool found = strstr(json, e->needle) != NULL;
    mesh_string_free(json);
    return found;
}

typedef struct {
    const mesh_node_t *node;
    const char *key;
} key_expectation;

static bool has_key(void *arg) {
    const key_expectation *e = arg;
    char *json = NULL;
    mesh_result rc = mesh_node_get_json(e->node, e->key, NULL, &json);
    mesh_string_free(json);
    return rc == MESH_RESULT_OK;
}

static void test_ipv6_pair(void) {
    if (!have_ipv6_loopback()) {
        fprintf(stderr, "  this test needs the IPv6 loopback address ::1, which this "
                        "environment lacks\n");
        harness_failures++;
        return;
    }
    mesh_node_t *a = test_node_at("v6a", "::1", NULL);
    mesh_node_t *b = test_node_at("v6b", "::1", NULL);
    bool ok = a != NULL && b != NULL;
    if (ok) {
        CHECK_OK(mesh_node_add_bootstrap_peer(b, "::1", node_port(a)));
        CHECK_OK(mesh_node_start(a));
        CHECK_OK(mesh_node_start(b));
        CHECK_OK(mesh_node_set_string(a, "k", "over ipv6"));
        key_expectation e = {b, "k"};
        CHECK(wait_until(has_key, &e));
        char needle[64];
        snprintf(needle, sizeof needle, "\"addr\":\"[::1]:%u\"", (unsigned)node_port(a));
        peers_expectation p = {b, needle};
        CHECK(wait_until(peers_contain, &p));
    }
    mesh_node_free(a);
    mesh_node_free(b);
    REQUIRE(ok);
}

static void test_advertised_address_is_recorded_and_gossiped(void) {
    /* Bound to every interface; advertises the loopback address with its own port. */
    mesh_node_t *wild = test_node_at("wild", "0.0.0.0", "127.0.0.1:0");
    mesh_node_t *boot = test_node("boot");
    mesh_node_t *third = test_node("third");
    bool ok = wild != NULL && boot != NULL && third != NULL;
    if (ok) {
        CHECK_OK(mesh_node_add_bootstrap_peer(wild, "127.0.0.1", node_port(boot)));
        CHECK_OK(mesh_node_add_bootstrap_peer(third, "127.0.0.1", node_port(boot)));
        CHECK_OK(mesh_node_start(boot));
        CHECK_OK(mesh_node_start(wild));
        CHECK_OK(mesh_node_start(third));
        char needle[64];
        snprintf(needle, sizeof needle, "\"advertised_addr\":\"127.0.0.1:%u\"",
                 (unsigned)node_port(wild));
        peers_expectation recorded = {boot, needle};
        CHECK(wait_until(peers_contain, &recorded));
        CHECK_OK(mesh_node_set_string(wild, "from", "wild"));
        key_expectation e = {third, "from"};
        CHECK(wait_until(has_key, &e));
        snprintf(needle, sizeof needle, "\"node_id\":\"wild\",\"addr\":\"127.0.0.1:%u\"",
                 (unsigned)node_port(wild));
        peers_expectation found = {third, needle};
        CHECK(wait_until(peers_contain, &found));
    }
    mesh_node_free(wild);
    mesh_node_free(boot);
    mesh_node_free(third);
    REQUIRE(ok);
}

static void test_localhost_seed(void) {
    mesh_node_t *seed = test_node("seed");
    mesh_node_t *joiner = test_node("joiner");
    bool ok = seed != NULL && joiner != NULL;
    if (ok) {
        CHECK_OK(mesh_node_start(seed));
        CHECK_OK(mesh_node_start(joiner));
        /* Returns at once: the name is resolved in the background. */
        CHECK_OK(mesh_node_add_bootstrap_peer(joiner, "localhost", node_port(seed)));
        CHECK_OK(mesh_node_set_i64(seed, "hello", 1));
        key_expectation e = {joiner, "hello"};
        CHECK(wait_until(has_key, &e));
    }
    mesh_node_free(seed);
    mesh_node_free(joiner);
    REQUIRE(ok);
}

static void test_address_errors(void) {
    mesh_config_t *config = mesh_config_default();
    REQUIRE(config != NULL);
    CHECK_OK(mesh_config_set_advertise_addr(config, "10.0.0.5:7000"));
    CHECK_OK(mesh_config_set_advertise_addr(config, "[2001:db8::5]:7000"));
    CHECK_OK(mesh_config_set_advertise_addr(config, NULL));
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_config_set_advertise_addr(config, "10.0.0.5"));
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT,
             mesh_config_set_advertise_addr(config, "2001:db8::5:7000"));
    CHECK_MESSAGE("brackets");
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_config_set_advertise_addr(config, "bad host:1"));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_advertise_addr(NULL, "10.0.0.5:7000"));

    /* An unspecified address is refused when the node is built, naming the field. */
    mesh_node_t *node = NULL;
    CHECK_OK(mesh_config_set_node_id(config, "n"));
    CHECK_OK(mesh_config_set_host(config, "127.0.0.1"));
    CHECK_OK(mesh_config_set_advertise_addr(config, "0.0.0.0:7000"));
    CHECK_RC(MESH_RESULT_INVALID_CONFIG, mesh_node_new(config, &node));
    CHECK_MESSAGE("advertise_addr");
    CHECK(node == NULL);
    mesh_config_free(config);

    mesh_node_t *v4 = test_node("v4");
    REQUIRE(v4 != NULL);
    CHECK_RC(MESH_RESULT_RESOLVE, mesh_node_add_bootstrap_peer(v4, "two words", 7000));
    CHECK_RC(MESH_RESULT_RESOLVE, mesh_node_add_bootstrap_peer(v4, "::1", 7000));
    CHECK_MESSAGE("cannot reach IPv6");
    mesh_node_free(v4);
}

int main(void) {
    const test_case tests[] = {
        {"ipv6_pair", test_ipv6_pair},
        {"advertised_address_is_recorded_and_gossiped",
         test_advertised_address_is_recorded_and_gossiped},
        {"localhost_seed", test_localhost_seed},
        {"address_errors", test_address_errors},
    };
    return run_tests("addresses", tests, sizeof tests / sizeof tests[0]);
}
