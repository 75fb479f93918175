"""Chat with the model's own template: python examples/python/chat.py [MODEL]

A one-off question goes to ``model.chat(messages)``; a conversation is a ``model.session()``,
which keeps the history, and the model its cache, so each turn evaluates only its new message.
"""

from __future__ import annotations

import uml
from _common import model_path

with uml.Loader(model_path(), n_ctx=2048) as model:
    reply = model.chat([{"role": "user", "content": "Say hello in French."}], max_tokens=32, temperature=0)
    print("assistant:", reply.text)

    with model.session(system="You are a helpful assistant.") as session:
        reply = session.send("What is the capital of France?", max_tokens=64, temperature=0)
        print("assistant:", reply.text)
        print("assistant: ", end="")
        for piece in session.stream("And of Italy?", max_tokens=64, temperature=0):
            print(piece, end="", flush=True)
        print()
        print(f"[{len(session.messages)} messages]")
