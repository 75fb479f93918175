// A chat loop with the C++ wrapper: each line read from stdin is a user message; the reply
// streams to stdout. An empty line or end of input ends the chat. The session keeps the
// history, and the model its cache, so each turn evaluates only the new message.
//
//   chat MODEL [SYSTEM_PROMPT]
//
// Build: c++ -std=c++17 chat.cpp $(pkg-config --cflags --libs uml) -o chat
//        (or CMake: find_package(uml) + target_link_libraries(chat uml::uml))
#include <uml.hpp>

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " MODEL [SYSTEM_PROMPT]\n";
        return 2;
    }
    try {
        uml::Model model(argv[1], R"({"n_ctx": 1024})");
        std::vector<uml::Message> start;
        if (argc > 2) start.push_back({"system", argv[2]});
        uml::ChatSession session(model, start);
        const std::string params = R"({"temperature": 0, "max_tokens": 48})";
        std::string line;
        while (std::cout << "> " << std::flush, std::getline(std::cin, line) && !line.empty()) {
            auto reply = session.send(line, params, [](std::string_view piece) {
                std::cout << piece << std::flush;
                return true;
            });
            std::cout << "\n[" << reply.finish_reason << "]\n";
        }
        std::cout << "\n";
    } catch (const uml::Error &e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
