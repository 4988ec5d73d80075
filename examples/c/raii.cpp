// mesh-sync from C++: a small RAII wrapper over the C API. Handles are owned by
// std::unique_ptr with the library's free functions as deleters, errors become
// exceptions, and the change callback is a std::function.
//
// Build and run (from this directory, after `cargo build -p mesh-ffi`):
//   make run
// or by hand:
//   c++ -std=c++17 -I../../include raii.cpp -o raii
//       -L../../target/debug -lmesh_sync -Wl,-rpath,../../target/debug && ./raii
// (one line)
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "mesh_sync.h"

namespace mesh {

// A failed call: the result code and the library's message.
class Error : public std::runtime_error {
public:
    Error(mesh_result code, const std::string &what)
        : std::runtime_error(what + ": " + mesh_result_str(code) + " (" +
                             mesh_last_error_message() + ")"),
          code_(code) {}
    mesh_result code() const noexcept { return code_; }

private:
    mesh_result code_;
};

inline void check(mesh_result rc, const char *what) {
    if (rc != MESH_RESULT_OK) {
        throw Error(rc, what);
    }
}

struct StringFree {
    void operator()(char *s) const noexcept { mesh_string_free(s); }
};
struct ConfigFree {
    void operator()(mesh_config_t *c) const noexcept { mesh_config_free(c); }
};
struct NodeFree {
    void operator()(mesh_node_t *n) const noexcept { mesh_node_free(n); }
};

using OwnedString = std::unique_ptr<char, StringFree>;

// What a change callback receives: the key, the new value as JSON (empty when the key
// was deleted) and where the change came from.
using ChangeHandler =
    std::function<void(std::string_view key, std::optional<std::string> json, mesh_change_origin)>;

extern "C" {
// Called on the node's callback thread. Exceptions must not unwind into the library.
static void mesh_cpp_on_change(void *user_data, mesh_str key, const mesh_value_t *value,
                               mesh_change_origin origin) {
    auto *handler = static_cast<ChangeHandler *>(user_data);
    try {
        std::optional<std::string> json;
        mesh_str text;
        if (value != nullptr && mesh_value_to_json(value, &text) == MESH_RESULT_OK) {
            json.emplace(text.data, text.len);
        }
        (*handler)(std::string_view(key.data, key.len), std::move(json), origin);
    } catch (const std::exception &e) {
        std::cerr << "change handler threw: " << e.what() << "\n";
    } catch (...) {
        std::cerr << "change handler threw\n";
    }
}
}

class Node {
public:
    explicit Node(const std::string &node_id, const std::string &host = "127.0.0.1",
                  int port = 0) {
        std::unique_ptr<mesh_config_t, ConfigFree> config(mesh_config_default());
        if (!config) {
            throw std::bad_alloc();
        }
        check(mesh_config_set_node_id(config.get(), node_id.c_str()), "node id");
        check(mesh_config_set_host(config.get(), host.c_str()), "host");
        check(mesh_config_set_port(config.get(), port), "port");
        mesh_node_t *raw = nullptr;
        check(mesh_node_new(config.get(), &raw), "create node");
        node_.reset(raw);
    }

    uint16_t port() const {
        uint16_t port = 0;
        check(mesh_node_port(node_.get(), &port), "port");
        return port;
    }
    void add_peer(const std::string &host, int port) {
        check(mesh_node_add_bootstrap_peer(node_.get(), host.c_str(), port), "add peer");
    }
    void start() { check(mesh_node_start(node_.get()), "start"); }
    void stop() { check(mesh_node_stop(node_.get()), "stop"); }

    void set_string(const std::string &key, const std::string &value) {
        check(mesh_node_set_string(node_.get(), key.c_str(), value.c_str()), "set");
    }
    void set_int(const std::string &key, int64_t value) {
        check(mesh_node_set_i64(node_.get(), key.c_str(), value), "set");
    }
    void set_json(const std::string &key, const std::string &json) {
        check(mesh_node_set_json(node_.get(), key.c_str(), json.c_str()), "set");
    }

    // The value as JSON, or nothing if the key is missing.
    std::optional<std::string> get_json(const std::string &key) const {
        char *raw = nullptr;
        mesh_result rc = mesh_node_get_json(node_.get(), key.c_str(), nullptr, &raw);
        if (rc == MESH_RESULT_NOT_FOUND) {
            return std::nullopt;
        }
        check(rc, "get");
        OwnedString json(raw);
        return std::string(json.get());
    }

    // Replaces the change handler. The node holds it until replaced or destroyed.
    void on_change(ChangeHandler handler) {
        auto next = std::make_unique<ChangeHandler>(std::move(handler));
        check(mesh_node_set_state_callback(node_.get(), mesh_cpp_on_change, next.get()),
              "set callback");
        // Setting the callback waited for any call of the previous one to return.
        handler_ = std::move(next);
    }

private:
    // Declared before node_, so destroyed after it: freeing the node waits for its
    // callbacks, and only then is the handler they use destroyed.
    std::unique_ptr<ChangeHandler> handler_;
    std::unique_ptr<mesh_node_t, NodeFree> node_;
};

}  // namespace mesh

int main() {
    try {
        mesh::Node alpha("alpha");
        mesh::Node beta("beta");
        std::atomic<int> synced{0};
        beta.on_change([&synced](std::string_view key, std::optional<std::string> json,
                                 mesh_change_origin origin) {
            if (origin == MESH_CHANGE_ORIGIN_SYNC) {
                std::cout << "[beta] " << key << " = " << json.value_or("(deleted)") << std::endl;
                synced++;
            }
        });
        beta.add_peer("127.0.0.1", alpha.port());
        alpha.start();
        beta.start();

        alpha.set_string("greeting", "hello from C++");
        alpha.set_json("scores", R"({"ada": 3, "bob": [1, 2]})");

        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (synced < 2 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        std::cout << "beta reads greeting = " << beta.get_json("greeting").value_or("(missing)")
                  << "\n";

        // Errors are exceptions carrying the library's message.
        try {
            beta.add_peer("127.0.0.1", 70000);
        } catch (const mesh::Error &e) {
            std::cout << "expected error: " << e.what() << "\n";
        }
        // Leaving the scope stops and frees the nodes, beta first.
        return synced >= 2 ? 0 : 1;
    } catch (const std::exception &e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
