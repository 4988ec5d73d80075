/* Two mesh-sync nodes in one process: "alpha" writes, "beta" reads the values back and
 * is told about every change through a callback.
 *
 * Build and run (from this directory, after `cargo build -p mesh-ffi`):
 *   make run
 * or by hand:
 *   cc -I../../include two_nodes.c -L../../target/debug -lmesh_sync \
 *      -Wl,-rpath,../../target/debug -o two_nodes && ./two_nodes */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mesh_sync.h"

/* Prints the library's message and exits when a call fails. */
static void check(mesh_result rc, const char *what) {
    if (rc != MESH_RESULT_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, mesh_result_str(rc),
                mesh_last_error_message());
        exit(1);
    }
}

static const char *origin_name(mesh_change_origin origin) {
    switch (origin) {
    case MESH_CHANGE_ORIGIN_SET: return "set";
    case MESH_CHANGE_ORIGIN_DELETE: return "delete";
    case MESH_CHANGE_ORIGIN_SYNC: return "sync";
    }
    return "?";
}

/* Runs on beta's callback thread. The key and value are only lent for the call. */
static void on_change(void *user_data, mesh_str key, const mesh_value_t *value,
                      mesh_change_origin origin) {
    const char *who = user_data;
    mesh_str json = {"(deleted)", 9};
    if (value != NULL) {
        mesh_value_to_json(value, &json);
    }
    printf("[%s callback] %s %.*s = %.*s\n", who, origin_name(origin), (int)key.len, key.data,
           (int)json.len, json.data);
    fflush(stdout);
}

static mesh_node_t *make_node(const char *node_id) {
    mesh_config_t *config = mesh_config_default();
    if (config == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    check(mesh_config_set_node_id(config, node_id), "set node id");
    check(mesh_config_set_host(config, "127.0.0.1"), "set host");
    check(mesh_config_set_port(config, 0), "set port"); /* any free port */
    mesh_node_t *node = NULL;
    check(mesh_node_new(config, &node), "create node");
    mesh_config_free(config); /* the node keeps its own copy */
    return node;
}

int main(void) {
    printf("mesh-sync %s\n", mesh_version());
    mesh_node_t *alpha = make_node("alpha");
    mesh_node_t *beta = make_node("beta");

    uint16_t alpha_port = 0;
    check(mesh_node_port(alpha, &alpha_port), "read port");
    static char beta_name[] = "beta";
    check(mesh_node_set_state_callback(beta, on_change, beta_name), "set callback");
    check(mesh_node_add_bootstrap_peer(beta, "127.0.0.1", alpha_port), "add peer");
    check(mesh_node_start(alpha), "start alpha");
    check(mesh_node_start(beta), "start beta");

    check(mesh_node_set_f64(alpha, "temperature", 72.5), "write temperature");
    check(mesh_node_set_json(alpha, "sensor", "{\"room\": \"lab\", \"ids\": [1, 2]}"),
          "write sensor");

    /* Replication is asynchronous: poll until the value arrives (about a round trip). */
    double temperature = 0.0;
    mesh_result rc = MESH_RESULT_NOT_FOUND;
    for (int tries = 0; tries < 1000 && rc == MESH_RESULT_NOT_FOUND; tries++) {
        struct timespec pause = {0, 10 * 1000000L};
        nanosleep(&pause, NULL);
        rc = mesh_node_get_f64(beta, "temperature", &temperature);
    }
    check(rc, "read temperature on beta");
    printf("beta reads temperature = %.1f\n", temperature);

    char *sensor = NULL;
    mesh_value_type type = MESH_VALUE_TYPE_NULL;
    for (int tries = 0; tries < 1000; tries++) {
        rc = mesh_node_get_json(beta, "sensor", &type, &sensor);
        if (rc != MESH_RESULT_NOT_FOUND) {
            break;
        }
        struct timespec pause = {0, 10 * 1000000L};
        nanosleep(&pause, NULL);
    }
    check(rc, "read sensor on beta");
    printf("beta reads sensor = %s (a %s)\n", sensor,
           type == MESH_VALUE_TYPE_MAP ? "map" : "value of another type");
    mesh_string_free(sensor);

    char *status = NULL;
    check(mesh_node_status_json(beta, &status), "status");
    printf("beta status: %s\n", status);
    mesh_string_free(status);

    /* Freeing stops each node and waits for its callbacks to finish. */
    mesh_node_free(beta);
    mesh_node_free(alpha);
    return 0;
}
