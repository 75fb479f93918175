// uml.hpp: a small header-only C++17 wrapper over uml.h (RAII handles, exceptions,
// std::function callbacks). Link libuml as for C (pkg-config uml, or CMake uml::uml).
//
//     uml::Model model("model.gguf", R"({"n_ctx": 2048})");
//     auto out = model.generate("Once upon a time", R"({"max_tokens": 64})",
//                               [](std::string_view piece) { std::cout << piece; return true; });
//     std::cout << "\n[" << out.finish_reason << "]\n";
//
// Every failing call throws uml::Error, which carries the uml_status and uml_last_error().
// A Model may be used from several threads at once (const methods); callbacks run on the
// calling thread, and an exception thrown by one stops the call and is rethrown from it.
#ifndef UML_HPP
#define UML_HPP

#include "uml.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace uml {

/// A failed uml call: the status and the message of uml_last_error().
class Error : public std::runtime_error {
public:
    Error(uml_status status, const std::string &message)
        : std::runtime_error(std::string(uml_status_name(status)) + ": " + message),
          status_(status) {}
    uml_status status() const noexcept { return status_; }

private:
    uml_status status_;
};

namespace detail {

inline void check(uml_status status) {
    if (status != UML_OK) {
        throw Error(status, uml_last_error());
    }
}

/// Owns a string uml returned.
struct OwnedString {
    char *ptr = nullptr;
    OwnedString() = default;
    OwnedString(const OwnedString &) = delete;
    OwnedString &operator=(const OwnedString &) = delete;
    ~OwnedString() { uml_string_free(ptr); }
    std::string str() const { return ptr ? std::string(ptr) : std::string(); }
};

/// The string value of a top-level "key": "value" in a JSON object uml produced (enough for
/// the fixed-vocabulary fields such as finish_reason; not a general JSON parser).
inline std::string json_string_field(const std::string &json, const std::string &key) {
    const std::string needle = "\"" + key + "\":\"";
    const auto at = json.find(needle);
    if (at == std::string::npos) {
        return {};
    }
    const auto start = at + needle.size();
    const auto end = json.find('"', start);
    return end == std::string::npos ? std::string() : json.substr(start, end - start);
}

} // namespace detail

/// Escape `text` as a JSON string literal (with the quotes).
inline std::string json_quote(std::string_view text) {
    static const char *hex = "0123456789abcdef";
    std::string out = "\"";
    for (unsigned char c : text) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 0xf];
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out + "\"";
}

/// One chat message.
struct Message {
    std::string role;    // "system", "user" or "assistant"
    std::string content;
};

/// `messages` as the JSON array uml_chat takes.
inline std::string messages_json(const std::vector<Message> &messages) {
    std::string out = "[";
    for (std::size_t i = 0; i < messages.size(); ++i) {
        if (i) out += ",";
        out += "{\"role\":" + json_quote(messages[i].role) +
               ",\"content\":" + json_quote(messages[i].content) + "}";
    }
    return out + "]";
}

/// Called with each generated piece of text; return false to stop.
using TokenCallback = std::function<bool(std::string_view piece)>;
/// Called with the load stage ("inspect", "weights", "ready") and its fraction; false cancels.
using ProgressCallback = std::function<bool(std::string_view stage, float fraction)>;

/// What a generation produced.
struct Completion {
    std::string text;          // the generated text (what the callback received)
    std::string finish_reason; // "stop", "length" or "cancelled"
    std::string json;          // the full result: text, finish_reason, usage
};

inline std::string version() { return uml_version(); }

/// uml_inspect as a JSON string.
inline std::string inspect(const std::string &path) {
    detail::OwnedString out;
    detail::check(uml_inspect(path.c_str(), &out.ptr));
    return out.str();
}

/// uml_estimate as a JSON string; `options_json` as for loading.
inline std::string estimate(const std::string &path, const std::string &options_json = "") {
    detail::OwnedString out;
    detail::check(uml_estimate(path.c_str(), options_json.c_str(), &out.ptr));
    return out.str();
}

/// uml_hardware as a JSON string.
inline std::string hardware() {
    detail::OwnedString out;
    detail::check(uml_hardware(&out.ptr));
    return out.str();
}

namespace detail {
/// Run a streaming C call: `call(cb, user, out_json)`; pieces go to `on_token` (an exception
/// it throws stops the generation and is rethrown here), the result JSON into a Completion.
template <typename Call> Completion run(const TokenCallback &on_token, Call call) {
    struct State {
        const TokenCallback *fn;
        std::string text;
        std::exception_ptr error;
    } state{&on_token, {}, nullptr};
    auto trampoline = [](const char *piece, std::size_t len, void *user) -> bool {
        auto *s = static_cast<State *>(user);
        try {
            s->text.append(piece, len);
            return !*s->fn || (*s->fn)(std::string_view(piece, len));
        } catch (...) {
            s->error = std::current_exception();
            return false;
        }
    };
    detail::OwnedString out;
    const uml_status status = call(trampoline, &state, &out.ptr);
    if (state.error) {
        std::rethrow_exception(state.error);
    }
    detail::check(status);
    Completion c;
    c.json = out.str();
    c.finish_reason = detail::json_string_field(c.json, "finish_reason");
    c.text = std::move(state.text);
    return c;
}
} // namespace detail

/// A cancellation token: call cancel() from any thread to stop a generation using it.
class Cancel {
public:
    Cancel() { detail::check(uml_cancel_new(&handle_)); }
    Cancel(const Cancel &) = delete;
    Cancel &operator=(const Cancel &) = delete;
    Cancel(Cancel &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Cancel &operator=(Cancel &&other) noexcept {
        std::swap(handle_, other.handle_);
        return *this;
    }
    ~Cancel() { uml_cancel_free(handle_); }

    void cancel() const { detail::check(uml_cancel_cancel(handle_)); }
    void reset() const { detail::check(uml_cancel_reset(handle_)); }
    bool cancelled() const {
        bool out = false;
        detail::check(uml_cancel_is_cancelled(handle_, &out));
        return out;
    }
    const uml_cancel *get() const noexcept { return handle_; }

private:
    uml_cancel *handle_ = nullptr;
};

/// A loaded model. Move-only; const methods may run on several threads at once.
class Model {
public:
    /// Load `path`; `options_json` is a JSON object of load options ("" for defaults).
    explicit Model(const std::string &path, const std::string &options_json = "",
                   ProgressCallback progress = {}) {
        struct State {
            ProgressCallback *fn;
            std::exception_ptr error;
        } state{&progress, nullptr};
        uml_progress_cb cb = nullptr;
        if (progress) {
            cb = [](const char *stage, float fraction, void *user) -> bool {
                auto *s = static_cast<State *>(user);
                try {
                    return (*s->fn)(stage, fraction);
                } catch (...) {
                    s->error = std::current_exception();
                    return false;
                }
            };
        }
        const uml_status status =
            uml_model_load(path.c_str(), options_json.c_str(), cb, &state, &handle_);
        if (state.error) {
            std::rethrow_exception(state.error);
        }
        detail::check(status);
    }
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;
    Model(Model &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Model &operator=(Model &&other) noexcept {
        std::swap(handle_, other.handle_);
        return *this;
    }
    ~Model() { uml_model_free(handle_); }

    /// uml_model_info as a JSON string.
    std::string info() const {
        detail::OwnedString out;
        detail::check(uml_model_info(handle_, &out.ptr));
        return out.str();
    }

    std::vector<int32_t> tokenize(const std::string &text, bool add_special = true) const {
        std::size_t needed = 0;
        uml_status status = uml_tokenize(handle_, text.c_str(), add_special, nullptr, 0, &needed);
        if (status != UML_ERR_BUFFER_TOO_SMALL) {
            detail::check(status);
            return {};
        }
        std::vector<int32_t> tokens(needed);
        detail::check(uml_tokenize(handle_, text.c_str(), add_special, tokens.data(),
                                   tokens.size(), &needed));
        tokens.resize(needed);
        return tokens;
    }

    std::string detokenize(const std::vector<int32_t> &tokens) const {
        detail::OwnedString out;
        std::size_t len = 0;
        detail::check(uml_detokenize(handle_, tokens.data(), tokens.size(), &out.ptr, &len));
        return std::string(out.ptr, len);
    }

    /// Generate a continuation of `prompt`; `params_json` is a JSON object of generate
    /// parameters ("" for defaults, e.g. R"({"temperature": 0, "max_tokens": 32})").
    Completion generate(const std::string &prompt, const std::string &params_json = "",
                        const TokenCallback &on_token = {}, const Cancel *cancel = nullptr) const {
        return detail::run(on_token, [&](uml_token_cb cb, void *user, char **out) {
            return uml_generate(handle_, prompt.c_str(), params_json.c_str(), cb, user,
                                cancel ? cancel->get() : nullptr, out);
        });
    }

    /// Chat with the model's own template; the reply streams to `on_token`.
    Completion chat(const std::vector<Message> &messages, const std::string &params_json = "",
                    const TokenCallback &on_token = {}, const Cancel *cancel = nullptr) const {
        const std::string json = messages_json(messages);
        return detail::run(on_token, [&](uml_token_cb cb, void *user, char **out) {
            return uml_chat(handle_, json.c_str(), params_json.c_str(), cb, user,
                            cancel ? cancel->get() : nullptr, out);
        });
    }

    /// One vector per text.
    std::vector<std::vector<float>> embed(const std::vector<std::string> &texts,
                                          const Cancel *cancel = nullptr) const {
        std::size_t dim = 0;
        detail::check(uml_model_embedding_size(handle_, &dim));
        std::vector<const char *> ptrs;
        for (const auto &t : texts) ptrs.push_back(t.c_str());
        std::vector<float> flat(dim * texts.size());
        std::size_t written = 0;
        detail::check(uml_embed(handle_, ptrs.data(), ptrs.size(),
                                cancel ? cancel->get() : nullptr, flat.data(), flat.size(),
                                &written));
        std::vector<std::vector<float>> out;
        for (std::size_t i = 0; i < texts.size(); ++i) {
            out.emplace_back(flat.begin() + i * dim, flat.begin() + (i + 1) * dim);
        }
        return out;
    }

    const uml_model *get() const noexcept { return handle_; }

private:
    friend class Manager;
    /// Own a handle another call returned (uml_manager_get).
    struct Adopt {};
    Model(Adopt, uml_model *handle) noexcept : handle_(handle) {}

    uml_model *handle_ = nullptr;
};

/// A conversation that keeps its history, and its place in the model's cache, between turns
/// (uml_chat_session_*). Move-only; one turn at a time (a send during another is
/// UML_ERR_BUSY). It does not keep the model loaded.
class ChatSession {
public:
    /// Start a conversation on `model` from `start` (a system prompt, earlier turns, or none).
    explicit ChatSession(const Model &model, const std::vector<Message> &start = {}) {
        detail::check(
            uml_chat_session_new(model.get(), uml::messages_json(start).c_str(), &handle_));
    }
    ChatSession(const ChatSession &) = delete;
    ChatSession &operator=(const ChatSession &) = delete;
    ChatSession(ChatSession &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    ChatSession &operator=(ChatSession &&other) noexcept {
        std::swap(handle_, other.handle_);
        return *this;
    }
    ~ChatSession() { uml_chat_session_free(handle_); }

    /// One turn: add `content` as a `role` message, stream the reply to `on_token`, add it.
    Completion send(const std::string &content, const std::string &params_json = "",
                    const TokenCallback &on_token = {}, const Cancel *cancel = nullptr,
                    const std::string &role = "user") const {
        return detail::run(on_token, [&](uml_token_cb cb, void *user, char **out) {
            return uml_chat_session_send(handle_, role.c_str(), content.c_str(),
                                         params_json.c_str(), cb, user,
                                         cancel ? cancel->get() : nullptr, out);
        });
    }

    /// The conversation so far, as the JSON array of {"role", "content"} messages.
    std::string messages_json() const {
        detail::OwnedString out;
        detail::check(uml_chat_session_messages(handle_, &out.ptr));
        return out.str();
    }

    /// Start over from `start`.
    void reset(const std::vector<Message> &start = {}) const {
        detail::check(uml_chat_session_reset(handle_, uml::messages_json(start).c_str()));
    }

    const uml_chat_session *get() const noexcept { return handle_; }

private:
    uml_chat_session *handle_ = nullptr;
};

/// Several models by id within a memory budget (uml_manager_*). Move-only; const methods may
/// run on several threads at once.
class Manager {
public:
    /// `options_json`: {"memory_budget_bytes", "keep_alive_ms", "folders": [...]} ("" for
    /// defaults).
    explicit Manager(const std::string &options_json = "") {
        detail::check(uml_manager_new(options_json.c_str(), &handle_));
    }
    Manager(const Manager &) = delete;
    Manager &operator=(const Manager &) = delete;
    Manager(Manager &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Manager &operator=(Manager &&other) noexcept {
        std::swap(handle_, other.handle_);
        return *this;
    }
    ~Manager() { uml_manager_free(handle_); }

    /// Register the model at `path` as `id` (`register` is a C++ keyword).
    void add(const std::string &id, const std::string &path,
             const std::string &load_options_json = "") const {
        detail::check(uml_manager_register(handle_, id.c_str(), path.c_str(),
                                           load_options_json.c_str()));
    }

    /// Another name for the model `id`.
    void alias(const std::string &alias, const std::string &id) const {
        detail::check(uml_manager_alias(handle_, alias.c_str(), id.c_str()));
    }

    /// Register the models in the folders; the new ids as a JSON array.
    std::string scan(const std::string &load_options_json = "") const {
        detail::OwnedString out;
        detail::check(uml_manager_scan(handle_, load_options_json.c_str(), &out.ptr));
        return out.str();
    }

    /// The model `name`, loaded if needed (possibly unloading idle ones within the budget).
    /// The returned Model holds it in use until it is destroyed.
    Model get(const std::string &name) const {
        uml_model *model = nullptr;
        detail::check(uml_manager_get(handle_, name.c_str(), &model));
        return Model(Model::Adopt{}, model);
    }

    /// Load `path` under the existing `name`; calls on the old model finish on it.
    void swap(const std::string &name, const std::string &path,
              const std::string &load_options_json = "") const {
        detail::check(uml_manager_swap(handle_, name.c_str(), path.c_str(),
                                       load_options_json.c_str()));
    }

    /// Unload `name`; the bytes its estimate held.
    std::uint64_t unload(const std::string &name) const {
        std::uint64_t bytes = 0;
        detail::check(uml_manager_unload(handle_, name.c_str(), &bytes));
        return bytes;
    }

    /// Unregister `name` (unloading it); the bytes its estimate held.
    std::uint64_t remove(const std::string &name) const {
        std::uint64_t bytes = 0;
        detail::check(uml_manager_remove(handle_, name.c_str(), &bytes));
        return bytes;
    }

    /// Every registered model and its state, as JSON.
    std::string list_json() const {
        detail::OwnedString out;
        detail::check(uml_manager_list(handle_, &out.ptr));
        return out.str();
    }

    /// The budget and what the loaded models' estimates take, in bytes.
    std::pair<std::uint64_t, std::uint64_t> memory() const {
        std::uint64_t budget = 0, used = 0;
        detail::check(uml_manager_memory(handle_, &budget, &used));
        return {budget, used};
    }

    const uml_manager *handle() const noexcept { return handle_; }

private:
    uml_manager *handle_ = nullptr;
};

} // namespace uml

#endif // UML_HPP
