/* A minimal test harness for the C tests: checks that report and count, a runner that
 * prints "N passed, N failed", and polling helpers for conditions that become true
 * asynchronously (replication, callbacks). */
#ifndef MESH_TEST_HARNESS_H
#define MESH_TEST_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mesh_sync.h"

static int harness_failures;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            harness_failures++;                                                        \
        }                                                                              \
    } while (0)

/* Checks a call's result code; on a mismatch prints both codes and the library's
 * message. */
#define CHECK_RC(expected, call)                                                   \
    do {                                                                           \
        mesh_result check_rc_ = (call);                                            \
        if (check_rc_ != (expected)) {                                             \
            fprintf(stderr, "  %s:%d: %s returned %d (%s), expected %d (%s): %s\n", \
                    __FILE__, __LINE__, #call, (int)check_rc_,                     \
                    mesh_result_str(check_rc_), (int)(expected),                   \
                    mesh_result_str(expected), mesh_last_error_message());         \
            harness_failures++;                                                    \
        }                                                                          \
    } while (0)

#define CHECK_OK(call) CHECK_RC(MESH_RESULT_OK, call)

/* Fatal: the rest of the test cannot run without it. */
#define REQUIRE(cond)                                                                    \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "  %s:%d: requirement failed: %s (%s)\n", __FILE__, __LINE__, \
                    #cond, mesh_last_error_message());                                   \
            harness_failures++;                                                          \
            return;                                                                      \
        }                                                                                \
    } while (0)

#define CHECK_STR(expected, actual)                                                     \
    do {                                                                                \
        const char *check_e_ = (expected);                                              \
        const char *check_a_ = (actual);                                                \
        if (check_a_ == NULL || strcmp(check_e_, check_a_) != 0) {                      \
            fprintf(stderr, "  %s:%d: expected \"%s\", got \"%s\"\n", __FILE__, __LINE__, \
                    check_e_, check_a_ ? check_a_ : "(null)");                          \
            harness_failures++;                                                         \
        }                                                                               \
    } while (0)

/* The message of the last failure contains `needle`. */
#define CHECK_MESSAGE(needle)                                                        \
    do {                                                                             \
        const char *check_m_ = mesh_last_error_message();                            \
        if (strstr(check_m_, (needle)) == NULL) {                                    \
            fprintf(stderr, "  %s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, \
                    check_m_, (needle));                                             \
            harness_failures++;                                                      \
        }                                                                            \
    } while (0)

typedef void (*test_fn)(void);

typedef struct {
    const char *name;
    test_fn fn;
} test_case;

/* Runs every test, prints one line per test and a summary; the exit status is the
 * number of failed tests (capped), so `make` stops on failure. */
static inline int run_tests(const char *suite, const test_case *tests, size_t count) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < count; i++) {
        int before = harness_failures;
        tests[i].fn();
        if (harness_failures == before) {
            passed++;
            printf("ok   %s/%s\n", suite, tests[i].name);
        } else {
            failed++;
            printf("FAIL %s/%s\n", suite, tests[i].name);
        }
        fflush(stdout);
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed > 100 ? 100 : failed;
}

static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Seconds a test waits for an asynchronous condition. Generous, because the tests
 * also run under valgrind, which slows the library tens of times. */
static inline double patience(void) {
    const char *env = getenv("MESH_TEST_TIMEOUT");
    double value = env ? atof(env) : 0.0;
    return value > 0.0 ? value : 120.0;
}

/* Polls `cond(arg)` every 10 ms until it is true or `patience()` seconds pass. */
static inline bool wait_until(bool (*cond)(void *), void *arg) {
    double deadline = now_seconds() + patience();
    while (!cond(arg)) {
        if (now_seconds() > deadline) {
            return cond(arg);
        }
        sleep_ms(10);
    }
    return true;
}

/* Applies a test's settings to `config`: whether every one was taken. */
typedef bool (*config_settings)(mesh_config_t *config, const void *arg);

/* A node created from the default config, named `node_id`, with `settings(config, arg)`
 * applied; NULL, with the reason on stderr, if a step fails. */
static inline mesh_node_t *node_with(const char *node_id, config_settings settings,
                                     const void *arg) {
    mesh_config_t *config = mesh_config_default();
    if (config == NULL) {
        return NULL;
    }
    mesh_node_t *node = NULL;
    bool ok = mesh_config_set_node_id(config, node_id) == MESH_RESULT_OK &&
              settings(config, arg) && mesh_node_new(config, &node) == MESH_RESULT_OK;
    mesh_config_free(config);
    if (!ok) {
        fprintf(stderr, "  cannot create node %s: %s\n", node_id, mesh_last_error_message());
        mesh_node_free(node);
        return NULL;
    }
    return node;
}

typedef struct {
    const char *host;
    const char *advertise;
} test_address;

static inline bool test_settings(mesh_config_t *config, const void *arg) {
    const test_address *at = arg;
    return mesh_config_set_host(config, at->host) == MESH_RESULT_OK &&
           mesh_config_set_port(config, 0) == MESH_RESULT_OK &&
           (at->advertise == NULL ||
            mesh_config_set_advertise_addr(config, at->advertise) == MESH_RESULT_OK) &&
           mesh_config_set_sync_interval_ms(config, 200) == MESH_RESULT_OK &&
           mesh_config_set_heartbeat_interval_ms(config, 100) == MESH_RESULT_OK &&
           mesh_config_set_peer_timeout_ms(config, 3000) == MESH_RESULT_OK &&
           mesh_config_set_initial_rto_ms(config, 100) == MESH_RESULT_OK;
}

/* A test node bound to `host` (port 0), advertising `advertise` (NULL: none), with
 * short intervals. */
static inline mesh_node_t *test_node_at(const char *node_id, const char *host,
                                        const char *advertise) {
    test_address at = {host, advertise};
    return node_with(node_id, test_settings, &at);
}

/* A node on 127.0.0.1 with a free port and intervals short enough for tests. */
static inline mesh_node_t *test_node(const char *node_id) {
    return test_node_at(node_id, "127.0.0.1", NULL);
}

static inline uint16_t node_port(const mesh_node_t *node) {
    uint16_t port = 0;
    if (mesh_node_port(node, &port) != MESH_RESULT_OK) {
        return 0;
    }
    return port;
}

/* Creates two started nodes, the second bootstrapped to the first. */
static inline bool test_pair(const char *a_id, const char *b_id, mesh_node_t **a,
                             mesh_node_t **b) {
    *a = test_node(a_id);
    *b = test_node(b_id);
    if (*a == NULL || *b == NULL) {
        return false;
    }
    return mesh_node_add_bootstrap_peer(*b, "127.0.0.1", node_port(*a)) == MESH_RESULT_OK &&
           mesh_node_start(*a) == MESH_RESULT_OK && mesh_node_start(*b) == MESH_RESULT_OK;
}

#endif /* MESH_TEST_HARNESS_H */
