/* The C side of the cross-language test (tests/python/test_cross_language_c.py).
 *
 *   cross_lang_peer HOST PORT [TIMEOUT_SECONDS]
 *
 * Joins the mesh through HOST:PORT, writes one key of every value type ("c.null",
 * "c.bool", ..., "c.map"), then waits until the other side has written its own keys
 * ("py.null", ..., "py.map") and "py.done", which it writes once it has read ours.
 * Prints, one per line:
 *   READY <port>
 *   VALUE <TAB> <key> <TAB> <type> <TAB> <value as JSON>     (for every "py." key)
 *   DONE
 * Exits 0 on success, 1 on a library error, 2 on timeout, 64 on bad arguments. */
#define _POSIX_C_SOURCE 200809L /* nanosleep, clock_gettime */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mesh_sync.h"

static const char *const PY_KEYS[] = {"py.null",   "py.bool",  "py.int",  "py.float",
                                      "py.string", "py.bytes", "py.list", "py.map"};
#define PY_KEY_COUNT (sizeof PY_KEYS / sizeof PY_KEYS[0])

static int fail(const char *what, mesh_result rc) {
    fprintf(stderr, "cross_lang_peer: %s: %s: %s\n", what, mesh_result_str(rc),
            mesh_last_error_message());
    return 1;
}

#define TRY(what, call)                   \
    do {                                  \
        mesh_result try_rc_ = (call);     \
        if (try_rc_ != MESH_RESULT_OK) {  \
            status = fail(what, try_rc_); \
            goto done;                    \
        }                                 \
    } while (0)

static const char *type_name(mesh_value_type type) {
    switch (type) {
    case MESH_VALUE_TYPE_NULL: return "null";
    case MESH_VALUE_TYPE_BOOL: return "bool";
    case MESH_VALUE_TYPE_INT: return "int";
    case MESH_VALUE_TYPE_FLOAT: return "float";
    case MESH_VALUE_TYPE_STRING: return "string";
    case MESH_VALUE_TYPE_BYTES: return "bytes";
    case MESH_VALUE_TYPE_LIST: return "list";
    case MESH_VALUE_TYPE_MAP: return "map";
    }
    return "unknown";
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool present(const mesh_node_t *node, const char *key) {
    mesh_value_t *value = NULL;
    mesh_result rc = mesh_node_get(node, key, &value);
    mesh_value_free(value);
    return rc == MESH_RESULT_OK;
}

static bool all_present(const mesh_node_t *node) {
    for (size_t i = 0; i < PY_KEY_COUNT; i++) {
        if (!present(node, PY_KEYS[i])) {
            return false;
        }
    }
    return present(node, "py.done");
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s HOST PORT [TIMEOUT_SECONDS]\n", argv[0]);
        return 64;
    }
    const char *host = argv[1];
    char *end = NULL;
    errno = 0;
    long port = strtol(argv[2], &end, 10);
    /* Range is the library's to check: out-of-range ports come back as an error. */
    if (errno != 0 || *end != '\0' || port < INT_MIN || port > INT_MAX) {
        fprintf(stderr, "cross_lang_peer: bad port %s\n", argv[2]);
        return 64;
    }
    double timeout = argc == 4 ? atof(argv[3]) : 60.0;

    int status = 0;
    mesh_node_t *node = NULL;
    mesh_config_t *config = mesh_config_default();
    if (config == NULL) {
        return fail("mesh_config_default", MESH_RESULT_PANIC);
    }
    TRY("node id", mesh_config_set_node_id(config, "c-peer"));
    TRY("host", mesh_config_set_host(config, "127.0.0.1"));
    TRY("sync interval", mesh_config_set_sync_interval_ms(config, 200));
    TRY("heartbeat interval", mesh_config_set_heartbeat_interval_ms(config, 100));
    TRY("peer timeout", mesh_config_set_peer_timeout_ms(config, 3000));
    TRY("new node", mesh_node_new(config, &node));
    TRY("bootstrap peer", mesh_node_add_bootstrap_peer(node, host, (int)port));
    TRY("start", mesh_node_start(node));

    static const uint8_t raw[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    TRY("set c.null", mesh_node_set_null(node, "c.null"));
    TRY("set c.bool", mesh_node_set_bool(node, "c.bool", true));
    TRY("set c.int", mesh_node_set_i64(node, "c.int", -1234567890123LL));
    TRY("set c.float", mesh_node_set_f64(node, "c.float", 3.25));
    TRY("set c.string", mesh_node_set_string(node, "c.string", "h\xc3\xa9llo from C \xe2\x9c\x93"));
    TRY("set c.bytes", mesh_node_set_bytes(node, "c.bytes", raw, sizeof raw));
    TRY("set c.list",
        mesh_node_set_json(node, "c.list", "[1, \"two\", 3.5, null, false, {\"$bytes\": \"AAE=\"}]"));
    TRY("set c.map",
        mesh_node_set_json(node, "c.map",
                           "{\"name\": \"c\", \"nested\": {\"ok\": true, \"n\": [1, 2]},"
                           " \"raw\": {\"$bytes\": \"/wA=\"}}"));

    uint16_t bound = 0;
    TRY("port", mesh_node_port(node, &bound));
    printf("READY %u\n", (unsigned)bound);
    fflush(stdout);

    double deadline = now_seconds() + timeout;
    while (!all_present(node)) {
        if (now_seconds() > deadline) {
            fprintf(stderr, "cross_lang_peer: timed out; missing:");
            for (size_t i = 0; i < PY_KEY_COUNT; i++) {
                if (!present(node, PY_KEYS[i])) {
                    fprintf(stderr, " %s", PY_KEYS[i]);
                }
            }
            fprintf(stderr, "%s\n", present(node, "py.done") ? "" : " py.done");
            status = 2;
            goto done;
        }
        struct timespec pause = {0, 20 * 1000000L};
        nanosleep(&pause, NULL);
    }

    for (size_t i = 0; i < PY_KEY_COUNT; i++) {
        mesh_value_type type = MESH_VALUE_TYPE_NULL;
        char *json = NULL;
        TRY("read", mesh_node_get_json(node, PY_KEYS[i], &type, &json));
        printf("VALUE\t%s\t%s\t%s\n", PY_KEYS[i], type_name(type), json);
        mesh_string_free(json);
    }
    printf("DONE\n");
    fflush(stdout);

done:
    mesh_config_free(config);
    mesh_node_free(node);
    return status;
}
