/* Durability from C: a data directory keeps the state across nodes, sync durability,
 * and a clear MESH_RESULT_STORAGE for a directory in use or a damaged store. */
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

static char data_dir[256];

static mesh_node_t *stored_node(const char *node_id, int durability, mesh_result *rc_out) {
    mesh_config_t *config = mesh_config_default();
    mesh_node_t *node = NULL;
    mesh_result rc = MESH_RESULT_INTERNAL;
    if (config != NULL && mesh_config_set_node_id(config, node_id) == MESH_RESULT_OK &&
        mesh_config_set_host(config, "127.0.0.1") == MESH_RESULT_OK &&
        mesh_config_set_data_dir(config, data_dir) == MESH_RESULT_OK &&
        mesh_config_set_durability(config, durability) == MESH_RESULT_OK &&
        mesh_config_set_flush_interval_ms(config, 5) == MESH_RESULT_OK) {
        rc = mesh_node_new(config, &node);
    }
    mesh_config_free(config);
    if (rc_out != NULL) {
        *rc_out = rc;
    }
    return node;
}

static void remove_store(void) {
    char command[300];
    snprintf(command, sizeof command, "rm -rf '%s'", data_dir);
    REQUIRE(system(command) == 0);
}

/* The path of the store's first table file (written when a node closes). */
static int table_file(char *path, size_t size) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/mesh.fjall/partitions/entries/segments", data_dir);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return 0;
    }
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            snprintf(path, size, "%s/%s", dir, e->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

static void test_argument_checks(void) {
    mesh_config_t *config = mesh_config_default();
    REQUIRE(config != NULL);
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_data_dir(config, NULL));
    CHECK_RC(MESH_RESULT_NULL_PARAMETER, mesh_config_set_data_dir(NULL, "/tmp/x"));
    CHECK_RC(MESH_RESULT_INVALID_ARGUMENT, mesh_config_set_durability(config, 7));
    CHECK_MESSAGE("MESH_DURABILITY_SYNC");
    CHECK_OK(mesh_config_set_durability(config, MESH_DURABILITY_SYNC));
    CHECK_OK(mesh_config_set_data_dir(config, ""));
    CHECK_OK(mesh_config_set_node_id(config, "c-nodir"));
    CHECK_OK(mesh_config_set_flush_interval_ms(config, 0));
    mesh_node_t *node = NULL;
    CHECK_RC(MESH_RESULT_INVALID_CONFIG, mesh_node_new(config, &node));
    CHECK_MESSAGE("flush_interval");
    CHECK(node == NULL);
    mesh_config_free(config);
}

static void test_state_survives_a_restart(void) {
    remove_store();
    mesh_result rc = MESH_RESULT_OK;
    mesh_node_t *node = stored_node("c-durable", MESH_DURABILITY_SYNC, &rc);
    REQUIRE(node != NULL);
    CHECK_OK(mesh_node_set_i64(node, "answer", 42));
    CHECK_OK(mesh_node_set_json(node, "config", "{\"mode\": \"eco\"}"));
    bool existed = false;
    CHECK_OK(mesh_node_set_i64(node, "gone", 1));
    CHECK_OK(mesh_node_delete(node, "gone", &existed));
    CHECK(existed);

    /* A second node on the same directory is refused, naming the path. */
    mesh_node_t *second = stored_node("c-second", MESH_DURABILITY_BATCHED, &rc);
    CHECK(second == NULL);
    CHECK_RC(MESH_RESULT_STORAGE, rc);
    CHECK_MESSAGE(data_dir);
    mesh_node_free(second);
    mesh_node_free(node);

    /* Reloaded, never started: reads work at once. */
    node = stored_node("c-durable", MESH_DURABILITY_BATCHED, &rc);
    REQUIRE(node != NULL);
    int64_t got = 0;
    CHECK_OK(mesh_node_get_i64(node, "answer", &got));
    CHECK(got == 42);
    char *json = NULL;
    CHECK_OK(mesh_node_get_json(node, "config", NULL, &json));
    CHECK_STR("{\"mode\":\"eco\"}", json);
    mesh_string_free(json);
    CHECK_RC(MESH_RESULT_NOT_FOUND, mesh_node_get_i64(node, "gone", &got));
    mesh_node_free(node);
}

static void test_a_damaged_store_is_refused(void) {
    char path[600];
    REQUIRE(table_file(path, sizeof path));
    FILE *f = fopen(path, "r+b");
    REQUIRE(f != NULL);
    unsigned char garbage[64];
    memset(garbage, 0xa5, sizeof garbage);
    CHECK(fwrite(garbage, 1, sizeof garbage, f) == sizeof garbage);
    fclose(f);
    mesh_result rc = MESH_RESULT_OK;
    mesh_node_t *node = stored_node("c-durable", MESH_DURABILITY_BATCHED, &rc);
    CHECK(node == NULL);
    CHECK_RC(MESH_RESULT_STORAGE, rc);
    CHECK_MESSAGE("damaged");
    mesh_node_free(node);
    CHECK(access(path, F_OK) == 0);
    remove_store();
}

int main(void) {
    snprintf(data_dir, sizeof data_dir, "/tmp/mesh-c-durability-%ld", (long)getpid());
    const test_case tests[] = {
        {"argument_checks", test_argument_checks},
        {"state_survives_a_restart", test_state_survives_a_restart},
        {"a_damaged_store_is_refused", test_a_damaged_store_is_refused},
    };
    int rc = run_tests("test_durability", tests, sizeof tests / sizeof tests[0]);
    remove_store();
    return rc;
}
