// The C++ wrapper (include/uml.hpp): RAII handles, uml::Error with the status, callbacks as
// std::function, exceptions thrown by a callback stopping the call and coming back out of it.
//
//   test_cpp TINY_MODEL.gguf
#include <uml.hpp>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
            std::exit(1);                                                                    \
        }                                                                                    \
    } while (0)

template <typename F> static uml_status status_of(F f) {
    try {
        f();
    } catch (const uml::Error &e) {
        return e.status();
    }
    return UML_OK;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s TINY_MODEL.gguf\n", argv[0]);
        return 2;
    }
    const std::string path = argv[1];
    CHECK(!uml::version().empty());
    CHECK(uml::inspect(path).find("\"llama\"") != std::string::npos);
    CHECK(!uml::hardware().empty());
    CHECK(uml::estimate(path, R"({"n_ctx": 128})").find("\"fits\"") != std::string::npos);

    // Errors carry the status and the message.
    CHECK(status_of([] { uml::Model m("/no/such/model.gguf"); }) == UML_ERR_NOT_FOUND);
    try {
        uml::Model m(path, R"({"bogus": 1})");
        CHECK(false);
    } catch (const uml::Error &e) {
        CHECK(e.status() == UML_ERR_INVALID_ARGUMENT);
        CHECK(std::string(e.what()).find("bogus") != std::string::npos);
    }

    // Progress, and an exception from the progress callback.
    int calls = 0;
    uml::Model model(path, R"({"n_ctx": 128, "n_threads": 1})", [&](std::string_view stage, float) {
        calls += stage.empty() ? 0 : 1;
        return true;
    });
    CHECK(calls >= 3);
    bool threw = false;
    try {
        uml::Model m(path, "", [](std::string_view, float) -> bool { throw std::runtime_error("stop"); });
    } catch (const std::runtime_error &e) {
        threw = std::string(e.what()) == "stop";
    }
    CHECK(threw);

    // Moving keeps one owner.
    uml::Model moved = std::move(model);
    CHECK(moved.info().find("\"n_ctx\":128") != std::string::npos);

    auto tokens = moved.tokenize("hello world");
    CHECK(tokens.size() >= 3 && tokens[0] == 1);
    CHECK(moved.detokenize(std::vector<int32_t>(tokens.begin() + 1, tokens.end())).find("hello world") != std::string::npos);

    const std::string greedy = R"({"temperature": 0, "max_tokens": 8})";
    std::string streamed;
    auto out = moved.generate("the cat", greedy, [&](std::string_view piece) {
        streamed += piece;
        return true;
    });
    CHECK(out.finish_reason == "length" && out.text == streamed);
    CHECK(moved.generate("the cat", greedy).text == out.text);

    // An exception thrown by the token callback stops generation and is rethrown.
    threw = false;
    try {
        moved.generate("the cat", greedy, [](std::string_view) -> bool { throw std::runtime_error("enough"); });
    } catch (const std::runtime_error &e) {
        threw = std::string(e.what()) == "enough";
    }
    CHECK(threw);

    // Cancel from another thread.
    uml::Cancel cancel;
    CHECK(!cancel.cancelled());
    std::thread([&] { cancel.cancel(); }).join();
    CHECK(cancel.cancelled());
    CHECK(moved.generate("the cat", greedy, {}, &cancel).finish_reason == "cancelled");
    cancel.reset();
    CHECK(moved.generate("the cat", greedy, {}, &cancel).finish_reason == "length");

    auto reply = moved.chat({{"user", "hello \"there\"\n"}}, greedy);
    CHECK(!reply.finish_reason.empty());
    // A chat session: the history grows by a message and a reply per turn; reset empties it.
    uml::ChatSession session(moved, {{"system", "be brief"}});
    std::string turn_text;
    auto turn = session.send("hello", greedy, [&](std::string_view piece) {
        turn_text += piece;
        return true;
    });
    CHECK(turn.text == turn_text && !turn.finish_reason.empty());
    session.send("again", greedy);
    const std::string history = session.messages_json();
    CHECK(history.find("\"again\"") != std::string::npos);
    CHECK(history.find("\"role\":\"assistant\"") != std::string::npos);
    uml::ChatSession moved_session = std::move(session);
    moved_session.reset();
    CHECK(moved_session.messages_json() == "[]");

    auto vectors = moved.embed({"hello", "world"});
    CHECK(vectors.size() == 2 && vectors[0].size() == 64 && vectors[0] != vectors[1]);

    // A manager: register, get (a Model holding it in use), memory, list, unload, errors.
    {
        const std::string folder = path.substr(0, path.find_last_of('/'));
        uml::Manager manager(R"({"folders": [")" + folder + R"("]})");
        manager.add("tiny", path, R"({"n_ctx": 128, "n_threads": 1})");
        manager.alias("small", "tiny");
        {
            uml::Model managed = manager.get("small");
            CHECK(managed.generate("the cat", greedy).finish_reason == "length");
            CHECK(manager.list_json().find("\"in_use\"") != std::string::npos);
        }
        CHECK(manager.memory().second > 0 && manager.memory().first >= manager.memory().second);
        CHECK(manager.list_json().find("\"idle\"") != std::string::npos);
        CHECK(manager.unload("tiny") > 0);
        CHECK(status_of([&] { manager.get("nope"); }) == UML_ERR_NOT_FOUND);
        uml::Manager moved_manager = std::move(manager);
        CHECK(moved_manager.remove("tiny") == 0);
    }

    std::printf("test_cpp: ok\n");
    return 0;
}
