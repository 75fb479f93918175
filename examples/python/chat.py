"""Chat with the model's own template: python examples/python/chat.py [MODEL]"""

from __future__ import annotations

from typing import List

import uml
from _common import model_path

messages: List[uml.Message] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
with uml.Loader(model_path(), n_ctx=2048) as model:
    reply = model.chat(messages, max_tokens=64, temperature=0)
    print("assistant:", reply.text)
    messages = [*messages, {"role": "assistant", "content": reply.text}, {"role": "user", "content": "And of Italy?"}]
    print("assistant: ", end="")
    for piece in model.chat_stream(messages, max_tokens=64, temperature=0):
        print(piece, end="", flush=True)
    print()
